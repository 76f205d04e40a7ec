#include <algorithm>
#include <cstdio>
#include <limits>

#include "lmx/base/error.h"
#include "lmx/tokenizer/models.h"
#include "lmx/tokenizer/unicode.h"

namespace lmx::tokenizer::detail {

namespace {
// SentencePiece's penalty for an unknown character, below the worst piece score.
constexpr double kUnkPenalty = 10.0;
}  // namespace

UnigramModel::UnigramModel(std::vector<UnigramPiece> pieces,
                           std::optional<int32_t> unk_id,
                           bool byte_fallback,
                           const std::string& what)
    : unk_id_(unk_id), byte_fallback_(byte_fallback) {
  if (unk_id_ && (*unk_id_ < 0 || static_cast<size_t>(*unk_id_) >= pieces.size())) {
    throw FormatError(what + ": unk_id " + std::to_string(*unk_id_) + " is outside the " +
                      std::to_string(pieces.size()) + "-piece vocab");
  }
  double min_score = std::numeric_limits<double>::max();
  double max_score = std::numeric_limits<double>::lowest();
  for (const auto& p : pieces) {
    if (p.unused || p.user_defined) continue;
    min_score = std::min(min_score, p.score);
    max_score = std::max(max_score, p.score);
  }
  if (min_score == std::numeric_limits<double>::max()) min_score = max_score = 0.0;
  unk_score_ = min_score - kUnkPenalty;
  vocab_.reserve(pieces.size());
  scores_.resize(pieces.size());
  node_piece_.push_back(-1);  // root
  edges_.reserve(pieces.size() * 4);
  for (size_t id = 0; id < pieces.size(); ++id) {
    const auto& p = pieces[id];
    vocab_.add(p.piece, static_cast<int32_t>(id));
    // User-defined pieces must win over any segmentation of their text.
    scores_[id] = p.user_defined ? static_cast<double>(p.piece.size()) * max_score - 0.1 : p.score;
    if (p.unused || p.piece.empty()) continue;
    if (unk_id_ && static_cast<int32_t>(id) == *unk_id_) continue;
    int32_t node = 0;
    for (char ch : p.piece) {
      auto b = static_cast<uint8_t>(ch);
      int32_t next = child(node, b);
      if (next < 0) {
        next = static_cast<int32_t>(node_piece_.size());
        node_piece_.push_back(-1);
        edges_.emplace((static_cast<uint64_t>(node) << 8) | b, next);
      }
      node = next;
    }
    if (node_piece_[node] < 0) node_piece_[node] = static_cast<int32_t>(id);
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto id = vocab_.find(name);
    byte_ids_[b] = id ? *id : -1;
  }
}

void UnigramModel::tokenize(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (cache_.get(word, ids)) return;
  size_t before = ids.size();
  tokenize_uncached(word, ids);
  cache_.put(word, ids.data() + before, ids.size() - before);
}

void UnigramModel::tokenize_uncached(std::string_view word, std::vector<int32_t>& ids) const {
  // Viterbi over byte positions (only character boundaries are ever reached).
  struct Node {
    double score;
    int32_t id;     // piece ending here (-2: unknown character)
    int32_t start;  // where that piece starts
    bool reached;
  };
  const size_t n = word.size();
  std::vector<Node> best(n + 1, Node{0.0, -1, -1, false});
  best[0].reached = true;
  size_t pos = 0;
  while (pos < n) {
    size_t char_end = pos + utf8_len(static_cast<uint8_t>(word[pos]));
    if (char_end > n) char_end = n;
    if (best[pos].reached) {
      const double base = best[pos].score;
      bool has_single = false;
      int32_t node = 0;
      for (size_t k = pos; k < n; ++k) {
        node = child(node, static_cast<uint8_t>(word[k]));
        if (node < 0) break;
        int32_t id = node_piece_[node];
        if (id < 0) continue;
        size_t end = k + 1;
        double s = base + scores_[id];
        if (!best[end].reached || s > best[end].score) {
          best[end] = Node{s, id, static_cast<int32_t>(pos), true};
        }
        if (end == char_end) has_single = true;
      }
      if (!has_single) {
        double s = base + unk_score_;
        if (!best[char_end].reached || s > best[char_end].score) {
          best[char_end] = Node{s, -2, static_cast<int32_t>(pos), true};
        }
      }
    }
    pos = char_end;
  }
  // Backtrack, then emit; runs of unknown characters fuse into one unk.
  struct Seg {
    int32_t id;
    size_t start, end;
  };
  std::vector<Seg> segs;
  for (size_t end = n; end > 0;) {
    const Node& node = best[end];
    segs.push_back({node.id, static_cast<size_t>(node.start), end});
    end = static_cast<size_t>(node.start);
  }
  std::reverse(segs.begin(), segs.end());
  for (size_t k = 0; k < segs.size(); ++k) {
    if (segs[k].id != -2) {
      ids.push_back(segs[k].id);
      continue;
    }
    size_t j = k;
    while (j + 1 < segs.size() && segs[j + 1].id == -2) ++j;
    if (byte_fallback_) {
      std::string_view text = word.substr(segs[k].start, segs[j].end - segs[k].start);
      bool all = true;
      for (char c : text) all = all && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all) {
        for (char c : text) ids.push_back(byte_ids_[static_cast<uint8_t>(c)]);
        k = j;
        continue;
      }
    }
    if (unk_id_) ids.push_back(*unk_id_);
    k = j;
  }
}

WordPieceModel::WordPieceModel(Vocab vocab, WordPieceOptions options)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  unk_id_ = vocab_.find(options_.unk_token);
}

void WordPieceModel::tokenize(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  size_t chars = 0;
  for (char c : word) chars += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
  auto push_unk = [&] {
    if (!unk_id_) {
      throw InvalidArgument("WordPiece: unk token '" + options_.unk_token +
                            "' is not in the vocab");
    }
    ids.push_back(*unk_id_);
  };
  if (chars > options_.max_input_chars_per_word) {
    push_unk();
    return;
  }
  size_t before = ids.size();
  std::string candidate;
  size_t start = 0;
  while (start < word.size()) {
    size_t end = word.size();
    std::optional<int32_t> found;
    while (start < end) {
      candidate.clear();
      if (start > 0) candidate += options_.continuing_subword_prefix;
      candidate.append(word.substr(start, end - start));
      found = vocab_.find(candidate);
      if (found) break;
      // Step back one whole character.
      do {
        --end;
      } while (end > start && (static_cast<uint8_t>(word[end]) & 0xC0) == 0x80);
    }
    if (!found) {
      ids.resize(before);
      push_unk();
      return;
    }
    ids.push_back(*found);
    start = end;
  }
}

WordLevelModel::WordLevelModel(Vocab vocab, std::optional<std::string> unk_token)
    : vocab_(std::move(vocab)) {
  if (unk_token) unk_id_ = vocab_.find(*unk_token);
}

void WordLevelModel::tokenize(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (auto id = vocab_.find(word)) {
    ids.push_back(*id);
  } else if (unk_id_) {
    ids.push_back(*unk_id_);
  } else {
    throw InvalidArgument("WordLevel: '" + std::string(word) +
                          "' is not in the vocab and there is no unk token");
  }
}

}  // namespace lmx::tokenizer::detail
