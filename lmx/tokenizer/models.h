// Models of the tokenizer.json pipeline (internal): BPE, WordPiece, Unigram, WordLevel.
#pragma once

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

// Token strings by id and ids by token string.
class Vocab {
 public:
  // Adds (or re-points) token -> id; `what` names the file/field for errors.
  void add(std::string token, int32_t id);
  std::optional<int32_t> find(std::string_view token) const {
    auto it = ids_.find(token);
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }
  std::string_view token(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= tokens_.size()) return {};
    return tokens_[id];
  }
  size_t size() const { return tokens_.size(); }  // max id + 1
  size_t count() const { return ids_.size(); }
  void reserve(size_t n) {
    ids_.reserve(n);
    tokens_.reserve(n);
  }

 private:
  TokenMap ids_;
  std::vector<std::string> tokens_;
};

// A word -> ids cache shared by threads (BPE and Unigram results depend only on the word).
class WordCache {
 public:
  bool get(std::string_view word, std::vector<int32_t>& ids) const;
  void put(std::string_view word, const int32_t* ids, size_t n) const;

 private:
  static constexpr size_t kShards = 16;
  static constexpr size_t kMaxPerShard = 8192;
  static constexpr size_t kMaxWordBytes = 256;
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, StringEq> map;
  };
  mutable Shard shards_[kShards];
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
  uint64_t work_done() const { return work_; }

 private:
  struct MergeValue {
    int32_t rank, merged;
  };
  const MergeValue* find_merge(int32_t left, int32_t right) const;
  void tokenize_uncached(std::string_view word, std::vector<int32_t>& ids) const;

  Vocab vocab_;
  BpeOptions options_;
  std::optional<int32_t> unk_id_;
  int32_t byte_ids_[256];
  std::unordered_map<uint64_t, MergeValue> merges_;
  WordCache cache_;
  mutable uint64_t work_ = 0;  // approximate under threads; only read by tests
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
