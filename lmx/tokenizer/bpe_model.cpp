#include <algorithm>
#include <cstdio>

#include "lmx/core/error.h"
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
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  bool last_was_unk = false;
  std::string scratch;
  size_t i = 0;
  while (i < word.size()) {
    size_t start = i;
    next_codepoint(word, i);
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
    } else {
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
  for (int32_t k = 0; k < n; ++k) {
    symbols[k].prev = k - 1;
    symbols[k].next = k + 1 < n ? k + 1 : -1;
  }

  // Merge loop: always the best-ranked adjacent pair, leftmost on ties. A heap keeps
  // this O(n log n) even for a megabyte of one repeated character.
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
    ++work_;
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
    ++work_;
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
  for (int32_t k = n > 0 ? 0 : -1; k >= 0; k = symbols[k].next) ids.push_back(symbols[k].id);
}

}  // namespace lmx::tokenizer::detail
