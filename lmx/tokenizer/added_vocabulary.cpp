#include "lmx/tokenizer/added_vocabulary.h"

#include "lmx/tokenizer/unicode.h"

namespace lmx::tokenizer::detail {

void AddedVocabulary::Trie::insert(std::string_view key, int32_t token_index) {
  if (terminal.empty()) {
    terminal.push_back(-1);  // node 0: the root
    root.fill(-1);
  }
  if (key.empty()) return;
  int32_t node = 0;
  for (size_t k = 0; k < key.size(); ++k) {
    auto b = static_cast<uint8_t>(key[k]);
    int32_t next;
    if (node == 0) {
      next = root[b];
    } else {
      auto it = edges.find((static_cast<uint64_t>(node) << 8) | b);
      next = it == edges.end() ? -1 : it->second;
    }
    if (next < 0) {
      next = static_cast<int32_t>(terminal.size());
      terminal.push_back(-1);
      if (node == 0) {
        root[b] = next;
      } else {
        edges.emplace((static_cast<uint64_t>(node) << 8) | b, next);
      }
    }
    node = next;
  }
  if (terminal[node] < 0) terminal[node] = token_index;
}

std::pair<size_t, int32_t> AddedVocabulary::Trie::longest(std::string_view text, size_t pos) const {
  std::pair<size_t, int32_t> best{0, -1};
  int32_t node = root[static_cast<uint8_t>(text[pos])];
  size_t k = pos;
  while (node >= 0) {
    ++k;
    if (terminal[node] >= 0) best = {k, terminal[node]};
    if (k >= text.size()) break;
    auto it = edges.find((static_cast<uint64_t>(node) << 8) | static_cast<uint8_t>(text[k]));
    node = it == edges.end() ? -1 : it->second;
  }
  return best;
}

void AddedVocabulary::build(std::vector<AddedToken> tokens, const Normalizer* normalizer) {
  tokens_ = std::move(tokens);
  raw_ = Trie{};
  normalized_ = Trie{};
  raw_.insert({}, -1);
  normalized_.insert({}, -1);
  for (size_t k = 0; k < tokens_.size(); ++k) {
    const auto& t = tokens_[k];
    by_id_[t.id] = k;
    by_content_.insert_or_assign(t.content, t.id);
    max_id_ = std::max(max_id_, t.id);
    if (t.content.empty()) continue;
    if (t.normalized && normalizer) {
      std::string n = t.content;
      normalizer->normalize(n);
      normalized_.insert(n, static_cast<int32_t>(k));
    } else if (t.normalized) {
      normalized_.insert(t.content, static_cast<int32_t>(k));
    } else {
      raw_.insert(t.content, static_cast<int32_t>(k));
    }
  }
}

namespace {
bool ends_with_word_char(std::string_view s) {
  if (s.empty()) return false;
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80) --i;
  size_t j = i;
  int32_t cp = next_codepoint(s, j);
  return cp >= 0 && is_alphanumeric(static_cast<char32_t>(cp));
}
bool starts_with_word_char(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  int32_t cp = next_codepoint(s, i);
  return cp >= 0 && is_alphanumeric(static_cast<char32_t>(cp));
}
}  // namespace

void AddedVocabulary::find_matches(std::string_view text,
                                   const Trie& trie,
                                   std::vector<Match>& out) const {
  out.clear();
  if (trie.empty() || text.empty()) return;
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (trie.root[static_cast<uint8_t>(text[pos])] < 0) {
      ++pos;
      continue;
    }
    auto [end, index] = trie.longest(text, pos);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& t = tokens_[index];
    size_t start = pos;
    size_t stop = end;
    pos = end;  // matches never overlap
    if (t.single_word) {
      bool start_ok = start == 0 || !ends_with_word_char(text.substr(0, start));
      bool stop_ok = stop == text.size() || !starts_with_word_char(text.substr(stop));
      if (!start_ok || !stop_ok) continue;
    }
    if (t.lstrip) {
      size_t s = start;
      while (s > start_offset) {
        size_t p = s - 1;
        while (p > 0 && (static_cast<uint8_t>(text[p]) & 0xC0) == 0x80) --p;
        size_t q = p;
        int32_t cp = next_codepoint(text, q);
        if (cp < 0 || !is_whitespace(static_cast<char32_t>(cp))) break;
        s = p;
      }
      start = std::max(s, start_offset);
    }
    if (t.rstrip) {
      size_t s = stop;
      while (s < text.size()) {
        size_t q = s;
        int32_t cp = next_codepoint(text, q);
        if (cp < 0 || !is_whitespace(static_cast<char32_t>(cp))) break;
        s = q;
      }
      stop = s;
      pos = stop;
    }
    out.push_back({start, stop, t.id});
    start_offset = stop;
  }
}

std::vector<Piece> AddedVocabulary::split(std::string_view text,
                                          const Normalizer* normalizer) const {
  std::vector<Piece> pieces;
  std::vector<Match> raw_matches, norm_matches;
  find_matches(text, raw_, raw_matches);
  auto emit_plain = [&](std::string_view segment, size_t offset) {
    std::string normalized(segment);
    if (normalizer) normalizer->normalize(normalized);
    find_matches(normalized, normalized_, norm_matches);
    size_t last = 0;
    for (const auto& m : norm_matches) {
      if (m.start > last) {
        pieces.push_back(Piece{normalized.substr(last, m.start - last), offset + last, -1});
      }
      pieces.push_back(Piece{normalized.substr(m.start, m.end - m.start), offset + m.start, m.id});
      last = m.end;
    }
    if (last < normalized.size() || normalized.empty()) {
      if (last < normalized.size()) {
        pieces.push_back(Piece{normalized.substr(last), offset + last, -1});
      }
    }
  };
  size_t last = 0;
  for (const auto& m : raw_matches) {
    if (m.start > last) emit_plain(text.substr(last, m.start - last), last);
    pieces.push_back(Piece{std::string(text.substr(m.start, m.end - m.start)), m.start, m.id});
    last = m.end;
  }
  if (last < text.size()) emit_plain(text.substr(last), last);
  return pieces;
}

}  // namespace lmx::tokenizer::detail
