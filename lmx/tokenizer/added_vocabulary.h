// Added tokens (internal): matched in the raw or normalized text before the model runs.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lmx/tokenizer/components.h"
#include "lmx/tokenizer/models.h"

namespace lmx::tokenizer::detail {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

class AddedVocabulary {
 public:
  // Call once all tokens are known; `normalizer` may be null.
  void build(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  // Splits text into added-token pieces and normalized pieces for the rest.
  std::vector<Piece> split(std::string_view text, const Normalizer* normalizer) const;

  const AddedToken* find_id(int32_t id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &tokens_[it->second];
  }
  std::optional<int32_t> find(std::string_view content) const {
    auto it = by_content_.find(content);
    if (it == by_content_.end()) return std::nullopt;
    return it->second;
  }
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  int32_t max_id() const { return max_id_; }

 private:
  // A byte trie over token contents; matching is leftmost-longest like HF's
  // Aho-Corasick (one walk per start position).
  struct Trie {
    std::array<int32_t, 256> root{};
    std::unordered_map<uint64_t, int32_t> edges;
    std::vector<int32_t> terminal;  // node -> index into tokens_ (-1 none)
    bool empty() const { return terminal.size() <= 1; }
    void insert(std::string_view key, int32_t token_index);
    // Longest match starting at pos: (end, token index) or (0, -1).
    std::pair<size_t, int32_t> longest(std::string_view text, size_t pos) const;
  };
  struct Match {
    size_t start, end;
    int32_t id;
  };
  void find_matches(std::string_view text, const Trie& trie, std::vector<Match>& out) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  TokenMap by_content_;
  Trie raw_, normalized_;
  int32_t max_id_ = -1;
};

}  // namespace lmx::tokenizer::detail
