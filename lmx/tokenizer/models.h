// Models of the tokenizer.json pipeline (internal): BPE, WordPiece, Unigram, WordLevel.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lmx/tokenizer/components.h"

namespace lmx::tokenizer::detail {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept;
};
struct StringEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, StringEq>;

// Token strings by id and ids by token string: one byte arena plus an
// open-addressing table (a node-based map costs 3 cache misses per lookup, and
// loading a 500k-merge tokenizer does ~1.5M lookups).
class Vocab {
 public:
  // Adds token -> id (a repeated token or id: the last one wins).
  void add(std::string_view token, int32_t id);
  std::optional<int32_t> find(std::string_view token) const {
    return find_hashed(token, StringHash{}(token));
  }
  // find() with the hash computed by the caller, and a prefetch of its slot, so bulk
  // lookups (merges at load time) can overlap their cache misses.
  std::optional<int32_t> find_hashed(std::string_view token, size_t hash) const;
  // Three stages for a batch: the slot, then the span of its id, then the bytes.
  void prefetch(size_t hash) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[hash & (slots_.size() - 1)]);
  }
  void prefetch_span(size_t hash) const {
    if (slots_.empty()) return;
    uint64_t s = slots_[hash & (slots_.size() - 1)];
    if (s) __builtin_prefetch(&spans_[(s & 0xFFFFFFFFu) - 1]);
  }
  void prefetch_bytes(size_t hash) const {
    if (slots_.empty()) return;
    uint64_t s = slots_[hash & (slots_.size() - 1)];
    if (s) __builtin_prefetch(arena_.data() + spans_[(s & 0xFFFFFFFFu) - 1].offset);
  }
  std::string_view token(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= spans_.size()) return {};
    const auto& sp = spans_[id];
    return std::string_view(arena_.data() + sp.offset, sp.length);
  }
  size_t size() const { return spans_.size(); }  // max id + 1
  size_t count() const { return count_; }
  void reserve(size_t n);

 private:
  struct Span {
    uint32_t offset = 0, length = 0;
  };
  void grow();
  std::string arena_;
  std::vector<Span> spans_;
  std::vector<uint64_t> slots_;  // (hash high 32 bits << 32) | (id + 1); 0 = empty
  size_t count_ = 0;
};

// uint64 -> (int32, int32), open addressing; for BPE merge pairs.
class PairMap {
 public:
  struct Value {
    int32_t rank, merged;
  };
  void reserve(size_t n);
  // Keeps the first value inserted for a key.
  void insert(uint64_t key, Value value);
  const Value* find(uint64_t key) const {
    if (slots_.empty()) return nullptr;
    size_t mask = slots_.size() - 1;
    for (size_t i = mix(key) & mask;; i = (i + 1) & mask) {
      if (slots_[i].key == key) return &slots_[i].value;
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static size_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  // Key and value side by side: a hit costs one cache miss.
  struct Slot {
    uint64_t key;
    Value value;
  };
  std::vector<Slot> slots_;
  size_t count_ = 0;
};

// A word -> ids cache shared by threads (BPE and Unigram results depend only on the
// word): one open-addressing table over two arenas, cleared when full.
class WordCache {
 public:
  bool get(std::string_view word, std::vector<int32_t>& ids) const;
  void put(std::string_view word, const int32_t* ids, size_t n) const;

 private:
  static constexpr size_t kSlots = 1 << 16;  // at most half used
  static constexpr size_t kMaxWordBytes = 128;
  static constexpr size_t kMaxIds = 64;
  struct Slot {
    uint64_t hash = 0;  // 0 = empty
    uint32_t word_offset = 0, ids_offset = 0;
    uint16_t word_length = 0, ids_length = 0;
  };
  void clear_locked() const;
  mutable std::mutex mutex_;
  mutable std::vector<Slot> slots_;
  mutable std::string words_;
  mutable std::vector<int32_t> ids_;
  mutable size_t count_ = 0;
};

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class BpeModel final : public Model {
 public:
  // merges: (left id, right id, merged id) in rank order; equal `ranks` entries (when
  // given) share a rank, so the leftmost pair wins ties as in SentencePiece.
  struct Merge {
    int32_t left, right, merged, rank;
  };
  BpeModel(Vocab vocab, const std::vector<Merge>& merges, BpeOptions options);

  void tokenize(std::string_view word, std::vector<int32_t>& ids) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    return vocab_.find(token);
  }
  std::string_view id_to_token(int32_t id) const override { return vocab_.token(id); }
  size_t vocab_size() const override { return vocab_.size(); }
  const Vocab& vocab() const { return vocab_; }

  // Work counter for tests: merge candidates examined since construction.
  uint64_t work_done() const { return work_.load(std::memory_order_relaxed); }

 private:
  using MergeValue = PairMap::Value;
  const MergeValue* find_merge(int32_t left, int32_t right) const;
  void tokenize_uncached(std::string_view word, std::vector<int32_t>& ids) const;

  Vocab vocab_;
  BpeOptions options_;
  std::optional<int32_t> unk_id_;
  int32_t byte_ids_[256];
  // Id of each single code point below kCharTable (-1: not a token); only when there
  // is no subword prefix/suffix to add.
  static constexpr int32_t kCharTable = 0x3100;
  std::vector<int32_t> char_ids_;
  PairMap merges_;
  WordCache cache_;
  mutable std::atomic<uint64_t> work_{0};  // added to once per word
};

struct WordPieceOptions {
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  size_t max_input_chars_per_word = 100;
};

class WordPieceModel final : public Model {
 public:
  WordPieceModel(Vocab vocab, WordPieceOptions options);
  void tokenize(std::string_view word, std::vector<int32_t>& ids) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    return vocab_.find(token);
  }
  std::string_view id_to_token(int32_t id) const override { return vocab_.token(id); }
  size_t vocab_size() const override { return vocab_.size(); }

 private:
  Vocab vocab_;
  WordPieceOptions options_;
  std::optional<int32_t> unk_id_;
};

class WordLevelModel final : public Model {
 public:
  WordLevelModel(Vocab vocab, std::optional<std::string> unk_token);
  void tokenize(std::string_view word, std::vector<int32_t>& ids) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    return vocab_.find(token);
  }
  std::string_view id_to_token(int32_t id) const override { return vocab_.token(id); }
  size_t vocab_size() const override { return vocab_.size(); }

 private:
  Vocab vocab_;
  std::optional<int32_t> unk_id_;
};

struct UnigramPiece {
  std::string piece;
  double score;
  bool user_defined = false;  // SentencePiece USER_DEFINED: preferred whole
  bool unused = false;        // never produced by the model (CONTROL/UNUSED)
};

class UnigramModel final : public Model {
 public:
  UnigramModel(std::vector<UnigramPiece> pieces,
               std::optional<int32_t> unk_id,
               bool byte_fallback,
               const std::string& what);
  void tokenize(std::string_view word, std::vector<int32_t>& ids) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override {
    return vocab_.find(token);
  }
  std::string_view id_to_token(int32_t id) const override { return vocab_.token(id); }
  size_t vocab_size() const override { return vocab_.size(); }

 private:
  void tokenize_uncached(std::string_view word, std::vector<int32_t>& ids) const;
  int32_t child(int32_t node, uint8_t byte) const {
    auto it = edges_.find((static_cast<uint64_t>(node) << 8) | byte);
    return it == edges_.end() ? -1 : it->second;
  }

  Vocab vocab_;
  std::vector<double> scores_;
  std::optional<int32_t> unk_id_;
  bool byte_fallback_;
  double unk_score_;
  int32_t byte_ids_[256];
  // Byte trie over the pieces: node -> id of the piece ending there (-1 when none).
  std::vector<int32_t> node_piece_;
  std::unordered_map<uint64_t, int32_t> edges_;
  WordCache cache_;
};

}  // namespace lmx::tokenizer::detail
