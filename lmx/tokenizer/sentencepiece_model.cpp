// SentencePiece tokenizer.model (a protobuf ModelProto) -> TokenizerImpl.
// The protobuf wire format is read by hand: only a handful of fields matter.
#include "lmx/tokenizer/sentencepiece_model.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "lmx/base/error.h"
#include "lmx/tokenizer/decoders.h"
#include "lmx/tokenizer/models.h"
#include "lmx/tokenizer/normalizers.h"
#include "lmx/tokenizer/post_processors.h"
#include "lmx/tokenizer/tokenizer_impl.h"
#include "lmx/tokenizer/unicode.h"

namespace lmx::tokenizer::detail {

namespace {

const char* const kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

// A cursor over one protobuf message.
class WireReader {
 public:
  WireReader(std::string_view data, const std::string& what) : data_(data), what_(what) {}
  bool done() const { return pos_ >= data_.size(); }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) fail("truncated varint");
      auto b = static_cast<uint8_t>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("varint longer than 10 bytes");
  }
  // Reads a field key; returns (field number, wire type).
  std::pair<uint32_t, uint32_t> key() {
    uint64_t k = varint();
    return {static_cast<uint32_t>(k >> 3), static_cast<uint32_t>(k & 7)};
  }
  std::string_view bytes() {
    uint64_t n = varint();
    if (n > data_.size() - pos_) fail("length-delimited field runs past the end");
    auto out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  float fixed32_float() {
    if (data_.size() - pos_ < 4) fail("truncated fixed32");
    float f;
    std::memcpy(&f, data_.data() + pos_, 4);
    pos_ += 4;
    return f;
  }
  void skip(uint32_t wire_type) {
    switch (wire_type) {
      case 0:
        varint();
        break;
      case 1:
        if (data_.size() - pos_ < 8) fail("truncated fixed64");
        pos_ += 8;
        break;
      case 2:
        bytes();
        break;
      case 5:
        if (data_.size() - pos_ < 4) fail("truncated fixed32");
        pos_ += 4;
        break;
      default:
        fail("unknown wire type " + std::to_string(wire_type));
    }
  }
  [[noreturn]] void fail(const std::string& msg) const {
    throw FormatError(what_ + ": not a valid SentencePiece model: " + msg + " at byte " +
                      std::to_string(pos_));
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
  const std::string& what_;
};

}  // namespace

SentencePieceProto parse_sentencepiece_proto(std::string_view data, const std::string& what) {
  SentencePieceProto proto;
  WireReader r(data, what);
  while (!r.done()) {
    auto [field, wire] = r.key();
    if (field == 1 && wire == 2) {
      WireReader p(r.bytes(), what);
      SentencePieceProto::Piece piece;
      while (!p.done()) {
        auto [f, w] = p.key();
        if (f == 1 && w == 2) {
          piece.piece = std::string(p.bytes());
        } else if (f == 2 && w == 5) {
          piece.score = p.fixed32_float();
        } else if (f == 3 && w == 0) {
          piece.type = static_cast<int>(p.varint());
        } else {
          p.skip(w);
        }
      }
      proto.pieces.push_back(std::move(piece));
    } else if (field == 2 && wire == 2) {
      WireReader t(r.bytes(), what);
      while (!t.done()) {
        auto [f, w] = t.key();
        if (w != 0) {
          t.skip(w);
          continue;
        }
        auto v = static_cast<int64_t>(t.varint());
        switch (f) {
          case 3:
            proto.model_type = static_cast<int>(v);
            break;
          case 24:
            proto.treat_whitespace_as_suffix = v != 0;
            break;
          case 25:
            proto.split_digits = v != 0;
            break;
          case 35:
            proto.byte_fallback = v != 0;
            break;
          case 40:
            proto.unk_id = static_cast<int32_t>(v);
            break;
          case 41:
            proto.bos_id = static_cast<int32_t>(v);
            break;
          case 42:
            proto.eos_id = static_cast<int32_t>(v);
            break;
          case 43:
            proto.pad_id = static_cast<int32_t>(v);
            break;
          default:
            break;
        }
      }
    } else if (field == 3 && wire == 2) {
      WireReader n(r.bytes(), what);
      while (!n.done()) {
        auto [f, w] = n.key();
        if (f == 1 && w == 2) {
          proto.normalizer_name = std::string(n.bytes());
        } else if (f == 2 && w == 2) {
          proto.precompiled_charsmap = std::string(n.bytes());
        } else if (f == 3 && w == 0) {
          proto.add_dummy_prefix = n.varint() != 0;
        } else if (f == 4 && w == 0) {
          proto.remove_extra_whitespaces = n.varint() != 0;
        } else if (f == 5 && w == 0) {
          proto.escape_whitespaces = n.varint() != 0;
        } else {
          n.skip(w);
        }
      }
    } else if (field == 4 && wire == 2) {
      WireReader s(r.bytes(), what);
      while (!s.done()) {
        auto [f, w] = s.key();
        if (f == 1 && w == 2) {
          WireReader sample(s.bytes(), what);
          std::pair<std::string, std::string> pair;
          while (!sample.done()) {
            auto [sf, sw] = sample.key();
            if (sf == 1 && sw == 2) {
              pair.first = std::string(sample.bytes());
            } else if (sf == 2 && sw == 2) {
              pair.second = std::string(sample.bytes());
            } else {
              sample.skip(sw);
            }
          }
          proto.self_test.push_back(std::move(pair));
        } else {
          s.skip(w);
        }
      }
    } else {
      r.skip(wire);
    }
  }
  if (proto.pieces.empty()) throw FormatError(what + ": SentencePiece model has no pieces");
  return proto;
}

void SentencePieceNormalizer::normalize(std::string& text) const {
  // SentencePiece's own normalizer: longest charsmap rule at each position, extra
  // whitespace collapsed, a dummy prefix, spaces escaped as U+2581.
  std::string_view input(text);
  auto next = [&](std::string_view in, std::string& out) -> size_t {
    std::string_view rep;
    size_t n = map_ ? map_->longest_prefix(in, rep) : 0;
    if (n > 0) {
      out.assign(rep);
      return n;
    }
    size_t i = 0;
    int32_t cp = next_codepoint(in, i);
    out.clear();
    if (cp < 0) {
      append_utf8(out, kReplacementChar);
    } else {
      out.assign(in.substr(0, i));
    }
    return i;
  };
  std::string sp;
  if (remove_extra_whitespaces_) {
    while (!input.empty()) {
      size_t n = next(input, sp);
      if (sp != " ") break;
      input.remove_prefix(n);
    }
  }
  std::string out;
  if (input.empty()) {
    text.clear();
    return;
  }
  const std::string ws = escape_whitespaces_ ? kSpace : " ";
  if (!treat_whitespace_as_suffix_ && add_dummy_prefix_) out += ws;
  bool prev_space = remove_extra_whitespaces_;
  while (!input.empty()) {
    size_t n = next(input, sp);
    std::string_view piece(sp);
    while (prev_space && !piece.empty() && piece[0] == ' ') piece.remove_prefix(1);
    if (!piece.empty()) {
      for (char c : piece) {
        if (c == ' ' && escape_whitespaces_) {
          out += kSpace;
        } else {
          out.push_back(c);
        }
      }
      prev_space = piece.back() == ' ';
    }
    input.remove_prefix(n);
    if (!remove_extra_whitespaces_) prev_space = false;
  }
  if (remove_extra_whitespaces_) {
    while (out.size() >= ws.size() && out.compare(out.size() - ws.size(), ws.size(), ws) == 0) {
      out.resize(out.size() - ws.size());
    }
  }
  if (treat_whitespace_as_suffix_ && add_dummy_prefix_) out += ws;
  text = std::move(out);
}

std::shared_ptr<TokenizerImpl> load_sentencepiece(std::string_view data,
                                                  const std::string& source) {
  return build_sentencepiece(parse_sentencepiece_proto(data, source), source);
}

std::shared_ptr<TokenizerImpl> build_sentencepiece(const SentencePieceProto& proto,
                                                   const std::string& source) {
  auto impl = std::make_shared<TokenizerImpl>();
  impl->source = source;
  const auto n = static_cast<int32_t>(proto.pieces.size());
  auto check = [&](int32_t id, const char* name) {
    if (id >= n) {
      throw FormatError(source + ": trainer_spec." + name + " " + std::to_string(id) +
                        " is outside the " + std::to_string(n) + "-piece vocab");
    }
  };
  check(proto.unk_id, "unk_id");
  check(proto.bos_id, "bos_id");
  check(proto.eos_id, "eos_id");
  check(proto.pad_id, "pad_id");

  std::shared_ptr<const CharsMap> map;
  if (!proto.precompiled_charsmap.empty()) {
    map = std::make_shared<const CharsMap>(proto.precompiled_charsmap,
                                           source + ": normalizer_spec.precompiled_charsmap");
  }
  impl->normalizer = std::make_unique<SentencePieceNormalizer>(
      map, proto.add_dummy_prefix, proto.remove_extra_whitespaces, proto.escape_whitespaces,
      proto.treat_whitespace_as_suffix);

  std::vector<AddedToken> added;
  for (int32_t id = 0; id < n; ++id) {
    const auto& p = proto.pieces[id];
    if (p.type == SentencePieceProto::kControl || p.type == SentencePieceProto::kUnknown) {
      if (!p.piece.empty()) added.push_back({p.piece, id, true, false, false, false, false});
    } else if (p.type == SentencePieceProto::kUserDefined) {
      added.push_back({p.piece, id, false, false, false, false, false});
    }
  }

  if (proto.model_type == SentencePieceProto::kBpe) {
    Vocab vocab;
    vocab.reserve(proto.pieces.size());
    for (int32_t id = 0; id < n; ++id) vocab.add(proto.pieces[id].piece, id);
    // Rank of a piece as a merge result: by score, best first; equal scores share a
    // rank so the leftmost pair wins, as in SentencePiece's BPE.
    std::vector<int32_t> order;
    for (int32_t id = 0; id < n; ++id) {
      int t = proto.pieces[id].type;
      if (t == SentencePieceProto::kNormal || t == SentencePieceProto::kUserDefined)
        order.push_back(id);
    }
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return proto.pieces[a].score > proto.pieces[b].score;
    });
    std::vector<int32_t> rank(n, -1);
    for (size_t k = 0; k < order.size(); ++k) {
      bool same = k > 0 && proto.pieces[order[k]].score == proto.pieces[order[k - 1]].score;
      rank[order[k]] = same ? rank[order[k - 1]] : static_cast<int32_t>(k);
    }
    std::vector<BpeModel::Merge> merges;
    for (int32_t id : order) {
      const std::string& s = proto.pieces[id].piece;
      size_t i = 0;
      while (i < s.size()) {
        next_codepoint(s, i);
        if (i >= s.size()) break;
        auto a = vocab.find(std::string_view(s).substr(0, i));
        auto b = vocab.find(std::string_view(s).substr(i));
        if (a && b && rank[*a] >= 0 && rank[*b] >= 0) merges.push_back({*a, *b, id, rank[id]});
      }
    }
    std::stable_sort(merges.begin(), merges.end(),
                     [](const auto& x, const auto& y) { return x.rank < y.rank; });
    BpeOptions opt;
    if (proto.unk_id >= 0) opt.unk_token = proto.pieces[proto.unk_id].piece;
    opt.byte_fallback = proto.byte_fallback;
    opt.fuse_unk = true;
    impl->model = std::make_unique<BpeModel>(std::move(vocab), merges, std::move(opt));
  } else if (proto.model_type == SentencePieceProto::kUnigram) {
    std::vector<UnigramPiece> pieces;
    pieces.reserve(proto.pieces.size());
    for (const auto& p : proto.pieces) {
      bool normal = p.type == SentencePieceProto::kNormal;
      bool user = p.type == SentencePieceProto::kUserDefined;
      pieces.push_back({p.piece, p.score, user, !(normal || user)});
    }
    std::optional<int32_t> unk;
    if (proto.unk_id >= 0) unk = proto.unk_id;
    impl->model =
        std::make_unique<UnigramModel>(std::move(pieces), unk, proto.byte_fallback, source);
  } else {
    throw FormatError(source + ": trainer_spec.model_type " + std::to_string(proto.model_type) +
                      " is not supported (only UNIGRAM=1 and BPE=2)");
  }

  std::vector<std::unique_ptr<Decoder>> decoders;
  decoders.push_back(std::make_unique<ReplaceDecoder>(Pattern::literal(kSpace), " "));
  if (proto.byte_fallback) decoders.push_back(std::make_unique<ByteFallbackDecoder>());
  decoders.push_back(std::make_unique<FuseDecoder>());
  if (proto.add_dummy_prefix && !proto.treat_whitespace_as_suffix) {
    decoders.push_back(std::make_unique<StripDecoder>(" ", 1, 0));
  }
  impl->decoder = std::make_unique<SequenceDecoder>(std::move(decoders));

  impl->added.build(std::move(added), impl->normalizer.get());
  impl->vocab_size = impl->model->vocab_size();
  auto piece = [&](int32_t id) -> std::optional<std::string> {
    if (id < 0) return std::nullopt;
    return proto.pieces[id].piece;
  };
  impl->config.bos_token = piece(proto.bos_id);
  impl->config.eos_token = piece(proto.eos_id);
  impl->config.unk_token = piece(proto.unk_id);
  impl->config.pad_token = piece(proto.pad_id);
  if (proto.bos_id >= 0) {
    std::vector<TemplatePiece> single = {{false, 0, {proto.bos_id}, 0}, {true, 0, {}, 0}};
    std::vector<TemplatePiece> pair = {{false, 0, {proto.bos_id}, 0},
                                       {true, 0, {}, 0},
                                       {false, 0, {proto.bos_id}, 1},
                                       {true, 1, {}, 1}};
    impl->post_processor = std::make_unique<TemplateProcessor>(std::move(single), std::move(pair));
  }
  return impl;
}

}  // namespace lmx::tokenizer::detail
