// SentencePiece ModelProto reading and normalization (internal).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lmx/tokenizer/components.h"
#include "lmx/tokenizer/normalizers.h"

namespace lmx::tokenizer::detail {

// The fields of sentencepiece_model.proto that tokenizing needs.
struct SentencePieceProto {
  enum PieceType {
    kNormal = 1,
    kUnknown = 2,
    kControl = 3,
    kUserDefined = 4,
    kUnused = 5,
    kByte = 6
  };
  enum ModelType { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };
  struct Piece {
    std::string piece;
    float score = 0.0f;
    int type = kNormal;
  };
  std::vector<Piece> pieces;
  int model_type = kUnigram;
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  bool split_digits = false;
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  std::string normalizer_name;
  std::string precompiled_charsmap;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
  // self_test_data: (input, expected pieces joined by spaces).
  std::vector<std::pair<std::string, std::string>> self_test;
};

// Throws FormatError naming `what` on malformed input.
SentencePieceProto parse_sentencepiece_proto(std::string_view data, const std::string& what);

class TokenizerImpl;
// The pipeline for a SentencePiece model (also used for GGUF "llama" vocabularies).
std::shared_ptr<TokenizerImpl> build_sentencepiece(const SentencePieceProto& proto,
                                                   const std::string& source);

class SentencePieceNormalizer final : public Normalizer {
 public:
  SentencePieceNormalizer(std::shared_ptr<const CharsMap> map,
                          bool add_dummy_prefix,
                          bool remove_extra_whitespaces,
                          bool escape_whitespaces,
                          bool treat_whitespace_as_suffix)
      : map_(std::move(map)),
        add_dummy_prefix_(add_dummy_prefix),
        remove_extra_whitespaces_(remove_extra_whitespaces),
        escape_whitespaces_(escape_whitespaces),
        treat_whitespace_as_suffix_(treat_whitespace_as_suffix) {}
  void normalize(std::string& text) const override;

 private:
  std::shared_ptr<const CharsMap> map_;
  bool add_dummy_prefix_, remove_extra_whitespaces_, escape_whitespaces_,
      treat_whitespace_as_suffix_;
};

}  // namespace lmx::tokenizer::detail
