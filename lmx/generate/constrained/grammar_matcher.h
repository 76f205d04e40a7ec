// Walks a Grammar one byte at a time (internal to constrained decoding): a pushdown
// automaton whose state is a set of stacks (a set because anyOf, optional properties
// and numbers leave several readings open until later bytes decide).
#pragma once

#include <compare>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lmx/generate/constrained/grammar.h"

namespace lmx::generate::constrained {

// Where the walk is inside one node. Field use per kind:
//   literal: [n, m) the literals still possible, pos bytes matched
//   string:  n characters so far, step (0 open quote, 1 body, 2 escape, 3 \u digits,
//            4 UTF-8 continuation), a pending bytes / digits, [b, c] next byte range
//   number:  step (grammar position), n digits of the current part
//   array:   step, n items started;  object: step, n property, m next candidate
//   map: step;  sequence: m next part
struct Frame {
  uint32_t node = 0;
  uint32_t n = 0;
  uint32_t m = 0;
  uint32_t pos = 0;
  uint8_t step = 0;
  uint8_t a = 0, b = 0, c = 0;
  auto operator<=>(const Frame&) const = default;
};
using Stack = std::vector<Frame>;

// The open readings. No stack: dead (the bytes so far are not a prefix of any value);
// an empty stack: a complete value was read.
struct MatchState {
  std::vector<Stack> stacks;
  bool dead() const { return stacks.empty(); }
  std::string key() const;  // identifies the state (mask cache)
};

class GrammarMatcher {
 public:
  explicit GrammarMatcher(std::shared_ptr<const Grammar> grammar);
  MatchState start() const;
  // out = the state after byte c from `in` (dead when c is not allowed).
  void advance(const MatchState& in, uint8_t c, MatchState& out) const;
  bool advance(MatchState& state, std::string_view bytes) const;  // false once dead
  // True when the bytes so far are a complete value (end of generation allowed).
  bool can_end(const MatchState& state) const;
  // The string frame and node when `state` is one reading inside a string's body with no
  // escape or character half read (the fast path of the mask); null otherwise.
  const Frame* string_body(const MatchState& state, const Node** node) const;
  const Grammar& grammar() const { return *grammar_; }

 private:
  void step(Stack& s, uint8_t c, std::vector<Stack>& out, int eps) const;
  void push(Stack& s, uint32_t node, uint8_t c, std::vector<Stack>& out, int eps) const;
  void pop(Stack& s, uint8_t c, std::vector<Stack>& out, int eps) const;
  Frame fresh(uint32_t node) const;
  bool completable(const Frame& f) const;
  std::shared_ptr<const Grammar> grammar_;
};

}  // namespace lmx::generate::constrained
