// Which tokens may come next (internal to constrained decoding): the tokens whose bytes
// the grammar accepts from a state, computed by walking the sorted vocabulary and kept
// per state, so a state met again (every step inside a free string, the same place in
// the next array item) costs a lookup.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "lmx/generate/constrained/grammar_matcher.h"
#include "lmx/generate/constrained/token_vocabulary.h"

namespace lmx::generate::constrained {

// allowed[id] is 1 for the tokens that may come next (EOS ids when the value is complete).
using TokenMask = std::vector<uint8_t>;

class TokenMasker {
 public:
  TokenMasker(std::shared_ptr<const GrammarMatcher> matcher,
              std::shared_ptr<const TokenVocabulary> vocabulary);
  // Thread-safe; the mask stays valid while the caller holds it.
  std::shared_ptr<const TokenMask> mask(const MatchState& state) const;
  const GrammarMatcher& matcher() const { return *matcher_; }
  const TokenVocabulary& vocabulary() const { return *vocabulary_; }

 private:
  void walk(const MatchState& state, const SortedTokens& tokens, TokenMask& allowed) const;
  std::shared_ptr<const GrammarMatcher> matcher_;
  std::shared_ptr<const TokenVocabulary> vocabulary_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<std::string, std::shared_ptr<const TokenMask>> cache_;
};

}  // namespace lmx::generate::constrained
