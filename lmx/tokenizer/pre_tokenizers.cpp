#include "lmx/tokenizer/pre_tokenizers.h"

#include "lmx/tokenizer/unicode.h"
#include "lmx/tokenizer/unicode_scripts.h"

namespace lmx::tokenizer::detail {

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

// Applies fn to every piece that is not an added token, replacing it by fn's output.
template <typename Fn>
void rewrite_pieces(std::vector<Piece>& pieces, Fn&& fn) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (auto& p : pieces) {
    if (p.added_id >= 0) {
      out.push_back(std::move(p));
    } else {
      fn(p, out);
    }
  }
  pieces = std::move(out);
}

// Match ranges (covering the whole text) from a list of match spans.
std::vector<MatchRange> ranges_from_matches(size_t size,
                                            const std::vector<std::pair<size_t, size_t>>& m) {
  std::vector<MatchRange> ranges;
  ranges.reserve(m.size() * 2 + 1);
  size_t last = 0;
  for (auto [s, e] : m) {
    if (s > last) ranges.push_back({last, s, false});
    ranges.push_back({s, e, true});
    last = e;
  }
  if (last < size) ranges.push_back({last, size, false});
  return ranges;
}

// HF's UnicodeScripts: a piece starts at every character whose script (never Any)
// differs from the last non-Any script seen. Characters of script Any (U+0020 and code
// points Unicode 9.0 did not assign) join the piece they fall in; the reference starts
// its first piece at the first non-Any character, so a leading run of Any characters
// is dropped, and a piece of Any characters only yields nothing.
class UnicodeScriptsPreTokenizer final : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    std::vector<size_t> starts;
    rewrite_pieces(pieces, [&](Piece& p, std::vector<Piece>& out) {
      starts.clear();
      int last = -1;
      for (size_t i = 0; i < p.text.size();) {
        size_t at = i;
        int32_t cp = next_codepoint(p.text, i);
        int script = unicode_scripts_class(cp < 0 ? kReplacementChar : static_cast<char32_t>(cp));
        if (script == kScriptAny) continue;
        if (script != last) starts.push_back(at);
        last = script;
      }
      starts.push_back(p.text.size());
      for (size_t k = 0; k + 1 < starts.size(); ++k) {
        out.push_back(
            Piece{p.text.substr(starts[k], starts[k + 1] - starts[k]), p.offset + starts[k], -1});
      }
    });
  }
};

}  // namespace

uint8_t unicode_scripts_class(char32_t c) {
  if (c == 0x30FC) return kScriptHan;  // KATAKANA-HIRAGANA PROLONGED SOUND MARK, Common
  if (c == U' ') return kScriptAny;
  uint8_t script = unicode_script(c);
  return script == kScriptHiragana || script == kScriptKatakana ? kScriptHan : script;
}

void split_by_ranges(const Piece& piece,
                     const std::vector<MatchRange>& ranges,
                     SplitBehavior behavior,
                     std::vector<Piece>& out) {
  // Ranges after merging, with a flag saying whether they are dropped.
  std::vector<MatchRange> merged;
  merged.reserve(ranges.size());
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (auto r : ranges) merged.push_back({r.start, r.end, false});
      break;
    case SplitBehavior::kRemoved:
      merged = ranges;
      break;
    case SplitBehavior::kContiguous: {
      bool prev = false;
      for (auto r : ranges) {
        if (r.is_match == prev && !merged.empty()) {
          merged.back().end = r.end;
        } else {
          merged.push_back({r.start, r.end, false});
        }
        prev = r.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool prev = false;
      for (auto r : ranges) {
        if (r.is_match && !prev && !merged.empty()) {
          merged.back().end = r.end;
        } else {
          merged.push_back({r.start, r.end, false});
        }
        prev = r.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool prev = false;
      for (size_t k = ranges.size(); k-- > 0;) {
        auto r = ranges[k];
        if (r.is_match && !prev && !merged.empty()) {
          merged.back().start = r.start;
        } else {
          merged.push_back({r.start, r.end, false});
        }
        prev = r.is_match;
      }
      std::reverse(merged.begin(), merged.end());
      break;
    }
  }
  for (auto r : merged) {
    if (r.is_match || r.end <= r.start) continue;
    out.push_back(Piece{piece.text.substr(r.start, r.end - r.start), piece.offset + r.start, -1});
  }
}

void SplitPreTokenizer::pre_tokenize(std::vector<Piece>& pieces) const {
  std::vector<std::pair<size_t, size_t>> matches;
  rewrite_pieces(pieces, [&](Piece& p, std::vector<Piece>& out) {
    matches.clear();
    pattern_.find_all(p.text, [&](size_t s, size_t e) { matches.emplace_back(s, e); });
    auto ranges = ranges_from_matches(p.text.size(), matches);
    if (invert_) {
      for (auto& r : ranges) r.is_match = !r.is_match;
    }
    split_by_ranges(p, ranges, behavior_, out);
  });
}

void CharSplitPreTokenizer::pre_tokenize(std::vector<Piece>& pieces) const {
  std::vector<MatchRange> ranges;
  rewrite_pieces(pieces, [&](Piece& p, std::vector<Piece>& out) {
    ranges.clear();
    size_t i = 0;
    while (i < p.text.size()) {
      size_t start = i;
      int32_t cp = next_codepoint(p.text, i);
      bool m = cp >= 0 && predicate_(static_cast<char32_t>(cp));
      if (!m && !ranges.empty() && !ranges.back().is_match) {
        ranges.back().end = i;  // runs of non-matching characters stay one range
      } else {
        ranges.push_back({start, i, m});
      }
    }
    split_by_ranges(p, ranges, behavior_, out);
  });
}

ByteLevelPreTokenizer::ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
    : add_prefix_space_(add_prefix_space) {
  if (use_regex) {
    static const auto gpt2 = std::make_shared<const Regex>(kGpt2Pattern, "ByteLevel");
    regex_ = gpt2;
  }
}

void ByteLevelPreTokenizer::pre_tokenize(std::vector<Piece>& pieces) const {
  auto to_bytes = [](std::string_view s) {
    std::string out;
    out.reserve(s.size() * 2);
    for (char c : s) out.append(byte_char_utf8(static_cast<uint8_t>(c)));
    return out;
  };
  rewrite_pieces(pieces, [&](Piece& p, std::vector<Piece>& out) {
    if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) p.text = " " + p.text;
    if (!regex_) {
      if (!p.text.empty()) out.push_back(Piece{to_bytes(p.text), p.offset, -1});
      return;
    }
    regex_->find_all(p.text, [&](size_t s, size_t e) {
      // The GPT-2 pattern covers every character, so the matches tile the piece.
      out.push_back(Piece{to_bytes(std::string_view(p.text).substr(s, e - s)), p.offset + s, -1});
    });
  });
}

void MetaspacePreTokenizer::pre_tokenize(std::vector<Piece>& pieces) const {
  std::vector<MatchRange> ranges;
  rewrite_pieces(pieces, [&](Piece& p, std::vector<Piece>& out) {
    std::string text;
    text.reserve(p.text.size() + replacement_.size());
    for (char c : p.text) {
      if (c == ' ') {
        text.append(replacement_);
      } else {
        text.push_back(c);
      }
    }
    bool starts = text.compare(0, replacement_.size(), replacement_) == 0;
    if (!starts && (scheme_ == PrependScheme::kAlways ||
                    (scheme_ == PrependScheme::kFirst && p.offset == 0))) {
      text = replacement_ + text;
    }
    Piece np{std::move(text), p.offset, -1};
    if (!split_) {
      if (!np.text.empty()) out.push_back(std::move(np));
      return;
    }
    ranges.clear();
    size_t last = 0, pos = 0;
    while ((pos = np.text.find(replacement_, pos)) != std::string::npos) {
      if (pos > last) ranges.push_back({last, pos, false});
      ranges.push_back({pos, pos + replacement_.size(), true});
      pos += replacement_.size();
      last = pos;
    }
    if (last < np.text.size()) ranges.push_back({last, np.text.size(), false});
    split_by_ranges(np, ranges, SplitBehavior::kMergedWithNext, out);
  });
}

std::unique_ptr<PreTokenizer> make_whitespace_pre_tokenizer() {
  return std::make_unique<SplitPreTokenizer>(Pattern::regex(R"(\w+|[^\w\s]+)", "Whitespace"),
                                             SplitBehavior::kRemoved, true);
}

std::unique_ptr<PreTokenizer> make_whitespace_split_pre_tokenizer() {
  return std::make_unique<CharSplitPreTokenizer>([](char32_t c) { return is_whitespace(c); },
                                                 SplitBehavior::kRemoved);
}

std::unique_ptr<PreTokenizer> make_punctuation_pre_tokenizer(SplitBehavior behavior) {
  return std::make_unique<CharSplitPreTokenizer>([](char32_t c) { return is_punctuation(c); },
                                                 behavior);
}

std::unique_ptr<PreTokenizer> make_bert_pre_tokenizer() {
  std::vector<std::unique_ptr<PreTokenizer>> items;
  items.push_back(make_whitespace_split_pre_tokenizer());
  items.push_back(make_punctuation_pre_tokenizer(SplitBehavior::kIsolated));
  return std::make_unique<SequencePreTokenizer>(std::move(items));
}

std::unique_ptr<PreTokenizer> make_digits_pre_tokenizer(bool individual_digits) {
  return std::make_unique<CharSplitPreTokenizer>(
      [](char32_t c) { return is_numeric(c); },
      individual_digits ? SplitBehavior::kIsolated : SplitBehavior::kContiguous);
}

std::unique_ptr<PreTokenizer> make_unicode_scripts_pre_tokenizer() {
  return std::make_unique<UnicodeScriptsPreTokenizer>();
}

}  // namespace lmx::tokenizer::detail
