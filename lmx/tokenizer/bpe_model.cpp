#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>

#include "lmx/base/error.h"
#include "lmx/tokenizer/models.h"
#include "lmx/tokenizer/unicode.h"

namespace lmx::tokenizer::detail {

namespace {
inline uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
}  // namespace

BpeModel::BpeModel(Vocab vocab, const std::vector<Merge>& merges, BpeOptions options)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  if (options_.unk_token) unk_id_ = vocab_.find(*options_.unk_token);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto id = vocab_.find(name);
    byte_ids_[b] = id ? *id : -1;
  }
  if (options_.continuing_subword_prefix.empty() && options_.end_of_word_suffix.empty()) {
    char_ids_.assign(kCharTable, -1);
    std::string ch;
    for (int32_t cp = 0; cp < kCharTable; ++cp) {
      if (cp >= 0xD800 && cp <= 0xDFFF) continue;
      ch.clear();
      append_utf8(ch, static_cast<char32_t>(cp));
      if (auto id = vocab_.find(ch)) char_ids_[cp] = *id;
    }
  }
  merges_.reserve(merges.size());
  for (const auto& m : merges) {
    // The first (best-ranked) occurrence of a pair wins, as in HF.
    merges_.insert(pair_key(m.left, m.right), MergeValue{m.rank, m.merged});
  }
}

const BpeModel::MergeValue* BpeModel::find_merge(int32_t left, int32_t right) const {
  return merges_.find(pair_key(left, right));
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    if (auto id = vocab_.find(word)) {
      ids.push_back(*id);
      return;
    }
  }
  if (cache_.get(word, ids)) return;
  size_t before = ids.size();
  tokenize_uncached(word, ids);
  cache_.put(word, ids.data() + before, ids.size() - before);
}

void BpeModel::tokenize_uncached(std::string_view word, std::vector<int32_t>& ids) const {
  // Initial symbols: one per character (or per byte token under byte fallback).
  struct Symbol {
    int32_t id;
    int32_t prev, next;
  };
  thread_local std::vector<Symbol> symbols;
  symbols.clear();
  bool last_was_unk = false;
  std::string scratch;
  size_t i = 0;
  while (i < word.size()) {
    size_t start = i;
    int32_t cp = next_codepoint(word, i);
    if (!char_ids_.empty() && cp >= 0 && cp < kCharTable && char_ids_[cp] >= 0) {
      symbols.push_back({char_ids_[cp], 0, 0});
      last_was_unk = false;
      continue;
    }
    std::string_view ch = word.substr(start, i - start);
    std::optional<int32_t> id;
    bool has_prefix = start > 0 && !options_.continuing_subword_prefix.empty();
    bool has_suffix = i == word.size() && !options_.end_of_word_suffix.empty();
    if (has_prefix || has_suffix) {
      scratch.clear();
      if (has_prefix) scratch += options_.continuing_subword_prefix;
      scratch += ch;
      if (has_suffix) scratch += options_.end_of_word_suffix;
      id = vocab_.find(scratch);
    } else if (char_ids_.empty() || cp >= kCharTable || cp < 0) {
      id = vocab_.find(ch);
    }
    if (id) {
      symbols.push_back({*id, 0, 0});
      last_was_unk = false;
      continue;
    }
    if (options_.byte_fallback) {
      bool all = true;
      for (char c : ch) all = all && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all) {
        for (char c : ch) symbols.push_back({byte_ids_[static_cast<uint8_t>(c)], 0, 0});
        last_was_unk = false;
        continue;
      }
    }
    if (unk_id_) {
      if (!(options_.fuse_unk && last_was_unk)) symbols.push_back({*unk_id_, 0, 0});
      last_was_unk = true;
    }
    // Without an unk token the character is dropped, as HF does.
  }
  const auto n = static_cast<int32_t>(symbols.size());
  if (n == 0) return;
  uint64_t work = 0;
  struct AddWork {  // one atomic add per word, whichever way the function returns
    std::atomic<uint64_t>& total;
    uint64_t& work;
    ~AddWork() { total.fetch_add(work, std::memory_order_relaxed); }
  } add_work{work_, work};
  for (int32_t k = 0; k < n; ++k) {
    symbols[k].prev = k - 1;
    symbols[k].next = k + 1 < n ? k + 1 : -1;
  }

  // Merge loop: always the best-ranked adjacent pair, leftmost on ties.
  if (n <= 48) {
    // Short words: keep each pair's rank and rescan for the best; only the two pairs
    // around a merge are looked up again.
    constexpr int32_t kNone = INT32_MAX;
    int32_t rank[48], merged[48];
    auto update = [&](int32_t left) {
      int32_t right = symbols[left].next;
      rank[left] = kNone;
      if (right < 0) return;
      ++work;
      if (const MergeValue* m = find_merge(symbols[left].id, symbols[right].id)) {
        rank[left] = m->rank;
        merged[left] = m->merged;
      }
    };
    for (int32_t k = 0; k < n; ++k) update(k);
    while (true) {
      int32_t best = -1, best_rank = kNone;
      for (int32_t k = 0; k >= 0; k = symbols[k].next) {
        if (rank[k] < best_rank) {
          best_rank = rank[k];
          best = k;
        }
      }
      if (best < 0) break;
      Symbol& l = symbols[best];
      Symbol& r = symbols[l.next];
      l.id = merged[best];
      l.next = r.next;
      if (r.next >= 0) symbols[r.next].prev = best;
      update(best);
      if (l.prev >= 0) update(l.prev);
    }
    for (int32_t k = 0; k >= 0; k = symbols[k].next) ids.push_back(symbols[k].id);
    return;
  }

  // Long words: a heap keeps this O(n log n) even for a megabyte of one character.
  struct Candidate {
    int32_t rank, left, right, merged;
    int32_t left_id, right_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::vector<Candidate> heap;
  auto push = [&](int32_t left) {
    if (left < 0) return;
    int32_t right = symbols[left].next;
    if (right < 0) return;
    ++work;
    const MergeValue* m = find_merge(symbols[left].id, symbols[right].id);
    if (!m) return;
    heap.push_back({m->rank, left, right, m->merged, symbols[left].id, symbols[right].id});
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
  };
  for (int32_t k = 0; k + 1 < n; ++k) push(k);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    Candidate c = heap.back();
    heap.pop_back();
    ++work;
    Symbol& l = symbols[c.left];
    // Stale when either side changed since the candidate was pushed.
    if (l.id != c.left_id || l.next != c.right || symbols[c.right].id != c.right_id) continue;
    Symbol& r = symbols[c.right];
    l.id = c.merged;
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = c.left;
    r.id = -1;  // dead
    r.prev = r.next = -1;
    push(l.prev);
    push(c.left);
  }
  for (int32_t k = 0; k >= 0; k = symbols[k].next) ids.push_back(symbols[k].id);
}

}  // namespace lmx::tokenizer::detail
