#include "lmx/generate/constrained/token_masker.h"

namespace lmx::generate::constrained {

namespace {
constexpr size_t kMaxCachedStates = 4096;  // then the cache starts over
}

TokenMasker::TokenMasker(std::shared_ptr<const GrammarMatcher> matcher,
                         std::shared_ptr<const TokenVocabulary> vocabulary)
    : matcher_(std::move(matcher)), vocabulary_(std::move(vocabulary)) {}

void TokenMasker::walk(const MatchState& state, const SortedTokens& tokens, TokenMask& allowed) const {
  // levels[d]: the state after the first d bytes of the current token; valid up to `valid`.
  std::vector<MatchState> levels(tokens.max_length + 1);
  levels[0] = state;
  size_t valid = 0;
  const size_t n = tokens.ids.size();
  size_t i = 0;
  while (i < n) {
    const std::string& t = vocabulary_->bytes(tokens.ids[i]);
    size_t d = std::min<size_t>(tokens.lcp[i], valid);
    bool dead = false;
    for (; d < t.size(); ++d) {
      matcher_->advance(levels[d], static_cast<uint8_t>(t[d]), levels[d + 1]);
      if (levels[d + 1].dead()) {
        dead = true;
        break;
      }
    }
    if (!dead) {
      allowed[static_cast<size_t>(tokens.ids[i])] = 1;
      valid = t.size();
      ++i;
      continue;
    }
    // Every following token that shares the rejected prefix t[0..d] is rejected too.
    valid = d;
    ++i;
    while (i < n && tokens.lcp[i] > d) ++i;
  }
}

std::shared_ptr<const TokenMask> TokenMasker::mask(const MatchState& state) const {
  std::string key = state.key();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  }
  const TokenVocabulary& v = *vocabulary_;
  auto allowed = std::make_shared<TokenMask>(v.size(), 0);
  const Node* string_node = nullptr;
  if (const Frame* f = matcher_->string_body(state, &string_node)) {
    // Inside a string: a plain token only adds characters, so it fits when they do; the
    // others (quotes, escapes, pieces of characters) are walked.
    const uint64_t room = string_node->max == kUnbounded ? UINT64_MAX : string_node->max - f->n;
    for (int32_t id : v.all().ids) {
      const int32_t chars = v.plain_chars(id);
      if (chars > 0 && static_cast<uint64_t>(chars) <= room) (*allowed)[static_cast<size_t>(id)] = 1;
    }
    walk(state, v.non_plain(), *allowed);
  } else {
    walk(state, v.all(), *allowed);
  }
  if (matcher_->can_end(state))
    for (int32_t id : v.eos_ids())
      if (id >= 0 && static_cast<size_t>(id) < allowed->size()) (*allowed)[static_cast<size_t>(id)] = 1;
  std::lock_guard<std::mutex> lock(mutex_);
  if (cache_.size() >= kMaxCachedStates) cache_.clear();
  cache_.emplace(std::move(key), allowed);
  return allowed;
}

}  // namespace lmx::generate::constrained
