#include "lmx/generate/constrained/grammar_matcher.h"

#include <algorithm>

namespace lmx::generate::constrained {

namespace {

// Bounds on the readings kept and on the transitions that consume no byte (an anyOf
// that refers to itself must not loop).
constexpr size_t kMaxStacks = 64;
constexpr int kMaxEpsilon = 64;

// Number grammar positions: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
enum NumberStep : uint8_t {
  kNumStart, kNumMinus, kNumZero, kNumInt, kNumDot, kNumFrac, kNumExp, kNumExpSign, kNumExpDigits
};
enum StringStep : uint8_t { kStrOpen, kStrBody, kStrEscape, kStrHex, kStrUtf8 };
// Containers: 0 before the opening bracket, 1 after it, then per kind below.
enum ObjectStep : uint8_t { kObjOpen, kObjFirst, kObjColon, kObjValue, kObjAfter, kObjNext };
enum ArrayStep : uint8_t { kArrOpen, kArrFirst, kArrAfter, kArrNext };

bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
bool is_hex(uint8_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

}  // namespace

std::string MatchState::key() const {
  std::string k;
  for (const Stack& s : stacks) {
    k.append(reinterpret_cast<const char*>(s.data()), s.size() * sizeof(Frame));
    k.push_back('|');
  }
  return k;
}

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar) : grammar_(std::move(grammar)) {}

Frame GrammarMatcher::fresh(uint32_t node) const {
  Frame f;
  f.node = node;
  const Node& n = grammar_->nodes[node];
  if (n.kind == NodeKind::kLiteral) f.m = static_cast<uint32_t>(n.literals.size());
  return f;
}

MatchState GrammarMatcher::start() const { return MatchState{{Stack{fresh(grammar_->root)}}}; }

bool GrammarMatcher::completable(const Frame& f) const {
  const Node& node = grammar_->nodes[f.node];
  switch (node.kind) {
    case NodeKind::kLiteral:
      return f.n < f.m && node.literals[f.n].size() == f.pos;
    case NodeKind::kNumber:
      return f.step == kNumZero || f.step == kNumInt || f.step == kNumFrac ||
             f.step == kNumExpDigits;
    case NodeKind::kSequence:
      return f.m == node.children.size();
    default:
      return false;
  }
}

void GrammarMatcher::push(Stack& s, uint32_t node, uint8_t c, std::vector<Stack>& out, int eps) const {
  if (s.size() >= kMaxMatchDepth) return;
  s.push_back(fresh(node));
  step(s, c, out, eps + 1);
}

void GrammarMatcher::pop(Stack& s, uint8_t c, std::vector<Stack>& out, int eps) const {
  s.pop_back();
  step(s, c, out, eps + 1);
}

void GrammarMatcher::step(Stack& s, uint8_t c, std::vector<Stack>& out, int eps) const {
  if (s.empty() || eps > kMaxEpsilon) return;
  const uint32_t node_index = s.back().node;
  const Node& node = grammar_->nodes[node_index];
  Frame& f = s.back();
  auto accept = [&] { out.push_back(s); };
  auto close = [&] {  // the frame ends with this byte
    s.pop_back();
    out.push_back(s);
  };
  switch (node.kind) {
    case NodeKind::kAnyOf:
      for (uint32_t alt : node.children) {
        Stack t = s;
        t.back() = fresh(alt);
        step(t, c, out, eps + 1);
      }
      return;
    case NodeKind::kSequence:
      if (f.m < node.children.size()) {
        const uint32_t part = node.children[f.m++];
        push(s, part, c, out, eps);
      } else {
        pop(s, c, out, eps);
      }
      return;
    case NodeKind::kLiteral: {
      if (completable(f)) {
        Stack t = s;
        pop(t, c, out, eps);
      }
      const auto& lits = node.literals;
      uint32_t lo = f.n;
      while (lo < f.m && (lits[lo].size() <= f.pos || static_cast<uint8_t>(lits[lo][f.pos]) != c)) ++lo;
      uint32_t hi = lo;
      while (hi < f.m && lits[hi].size() > f.pos && static_cast<uint8_t>(lits[hi][f.pos]) == c) ++hi;
      if (lo == hi) return;
      f.n = lo, f.m = hi, ++f.pos;
      if (hi - lo == 1 && lits[lo].size() == f.pos) return close();
      return accept();
    }
    case NodeKind::kString: {
      auto count_char = [&] {  // false when the string is full
        if (node.max != kUnbounded) {
          if (f.n >= node.max) return false;
          ++f.n;
        } else if (f.n < node.min) {
          ++f.n;  // unbounded: count only up to min, so the state (and its mask) repeats
        }
        return true;
      };
      switch (f.step) {
        case kStrOpen:
          if (c != '"') return;
          f.step = kStrBody;
          return accept();
        case kStrBody:
          if (c == '"') {
            if (f.n >= node.min) close();
            return;
          }
          if (c < 0x20 || c == 0x7F) return;
          if (c == '\\') {
            if (!count_char()) return;
            f.step = kStrEscape;
            return accept();
          }
          if (c < 0x80) {
            if (count_char()) accept();
            return;
          }
          // A UTF-8 lead byte: how many continuation bytes, and the range of the next.
          if (c >= 0xC2 && c <= 0xDF) {
            f.a = 1, f.b = 0x80, f.c = 0xBF;
          } else if (c >= 0xE0 && c <= 0xEF) {
            f.a = 2, f.b = c == 0xE0 ? 0xA0 : 0x80, f.c = c == 0xED ? 0x9F : 0xBF;
          } else if (c >= 0xF0 && c <= 0xF4) {
            f.a = 3, f.b = c == 0xF0 ? 0x90 : 0x80, f.c = c == 0xF4 ? 0x8F : 0xBF;
          } else {
            return;
          }
          if (!count_char()) return;
          f.step = kStrUtf8;
          return accept();
        case kStrUtf8:
          if (c < f.b || c > f.c) return;
          f.b = 0x80, f.c = 0xBF;
          if (--f.a == 0) f.step = kStrBody;
          return accept();
        case kStrEscape:
          if (c == 'u') {
            f.step = kStrHex, f.a = 0;
            return accept();
          }
          if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' ||
              c == 't') {
            f.step = kStrBody;
            return accept();
          }
          return;
        case kStrHex:
          // \u0XXX only: no surrogate halves, whose pairing validators count differently.
          if (!is_hex(c) || (f.a == 0 && c != '0')) return;
          if (++f.a == 4) f.step = kStrBody;
          return accept();
        default:
          return;
      }
    }
    case NodeKind::kNumber: {
      if (completable(f)) {
        Stack t = s;
        pop(t, c, out, eps);
      }
      const bool frac = !node.integer;
      auto digits = [&](uint8_t next, uint32_t limit) {
        if (f.step == next) {
          if (f.n >= limit) return;
          ++f.n;
        } else {
          f.step = next, f.n = 1;
        }
        accept();
      };
      switch (f.step) {
        case kNumStart:
          if (c == '-') {
            f.step = kNumMinus;
            return accept();
          }
          [[fallthrough]];
        case kNumMinus:
          if (c == '0') {
            f.step = kNumZero;
            return accept();
          }
          if (c >= '1' && c <= '9') return digits(kNumInt, kMaxIntegerDigits);
          return;
        case kNumZero:
        case kNumInt:
          if (is_digit(c) && f.step == kNumInt) return digits(kNumInt, kMaxIntegerDigits);
          if (frac && c == '.') {
            f.step = kNumDot;
            return accept();
          }
          if (frac && (c == 'e' || c == 'E')) {
            f.step = kNumExp;
            return accept();
          }
          return;
        case kNumDot:
        case kNumFrac:
          if (is_digit(c)) return digits(kNumFrac, kMaxFractionDigits);
          if (f.step == kNumFrac && (c == 'e' || c == 'E')) {
            f.step = kNumExp;
            return accept();
          }
          return;
        case kNumExp:
          if (c == '+' || c == '-') {
            f.step = kNumExpSign;
            return accept();
          }
          [[fallthrough]];
        case kNumExpSign:
        case kNumExpDigits:
          if (is_digit(c)) return digits(kNumExpDigits, kMaxExponentDigits);
          return;
        default:
          return;
      }
    }
    case NodeKind::kArray:
      switch (f.step) {
        case kArrOpen:
          if (c != '[') return;
          f.step = kArrFirst;
          return accept();
        case kArrFirst:
          if (c == ']') {
            if (node.min == 0) close();
            return;
          }
          if (node.max == 0) return;
          f.step = kArrAfter, f.n = 1;
          return push(s, node.child, c, out, eps);
        case kArrAfter:
          if (c == ',' && f.n < node.max) {
            f.step = kArrNext;
            return accept();
          }
          if (c == ']' && f.n >= node.min) close();
          return;
        case kArrNext:
          f.step = kArrAfter, ++f.n;
          return push(s, node.child, c, out, eps);
        default:
          return;
      }
    case NodeKind::kObject:
    case NodeKind::kMap: {
      const bool map = node.kind == NodeKind::kMap;
      const auto& props = node.properties;
      // No required property from m on: the object may close.
      auto may_close = [&] {
        return map || std::none_of(props.begin() + f.m, props.end(),
                                   [](const Property& p) { return p.required; });
      };
      switch (f.step) {
        case kObjOpen:
          if (c != '{') return;
          f.step = kObjFirst, f.m = 0;
          return accept();
        case kObjFirst:
        case kObjNext:
          if (f.step == kObjFirst && c == '}') {
            if (may_close()) close();
            return;
          }
          if (map) {
            f.step = kObjColon;
            return push(s, node.children[0], c, out, eps);
          }
          for (uint32_t i = f.m; i < props.size(); ++i) {
            Stack t = s;
            t.back().n = i, t.back().step = kObjColon;
            push(t, props[i].key, c, out, eps);
            if (props[i].required) break;
          }
          return;
        case kObjColon:
          if (c != ':') return;
          f.step = kObjValue;
          return accept();
        case kObjValue:
          f.step = kObjAfter, f.m = f.n + 1;
          return push(s, map ? node.child : props[f.n].value, c, out, eps);
        case kObjAfter:
          if (c == ',' && (map || f.m < props.size())) {
            f.step = kObjNext;
            return accept();
          }
          if (c == '}' && may_close()) close();
          return;
        default:
          return;
      }
    }
  }
}

void GrammarMatcher::advance(const MatchState& in, uint8_t c, MatchState& out) const {
  out.stacks.clear();
  for (const Stack& s : in.stacks) {
    Stack t = s;
    step(t, c, out.stacks, 0);
  }
  if (out.stacks.size() > 1) {
    std::sort(out.stacks.begin(), out.stacks.end());
    out.stacks.erase(std::unique(out.stacks.begin(), out.stacks.end()), out.stacks.end());
    if (out.stacks.size() > kMaxStacks) out.stacks.resize(kMaxStacks);
  }
}

bool GrammarMatcher::advance(MatchState& state, std::string_view bytes) const {
  MatchState next;
  for (char ch : bytes) {
    advance(state, static_cast<uint8_t>(ch), next);
    std::swap(state, next);
    if (state.dead()) return false;
  }
  return true;
}

bool GrammarMatcher::can_end(const MatchState& state) const {
  for (const Stack& s : state.stacks) {
    size_t depth = s.size();
    while (depth > 0 && completable(s[depth - 1])) --depth;
    if (depth == 0) return true;
  }
  return false;
}

const Frame* GrammarMatcher::string_body(const MatchState& state, const Node** node) const {
  if (state.stacks.size() != 1 || state.stacks[0].empty()) return nullptr;
  const Frame& f = state.stacks[0].back();
  const Node& n = grammar_->nodes[f.node];
  if (n.kind != NodeKind::kString || f.step != kStrBody) return nullptr;
  *node = &n;
  return &f;
}

}  // namespace lmx::generate::constrained
