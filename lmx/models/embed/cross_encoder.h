// Cross-encoder rerankers: BertForSequenceClassification and
// (XLM-)RobertaForSequenceClassification folders. A (query, document) pair is encoded as
// one input the way HF does (token types 0 then 1 where the model has two), truncated
// longest-first at the model's limit, and the classifier's logits are the scores.
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lmx/core/tensor.h"

namespace lmx::tokenizer {
class Tokenizer;
struct Encoding;
}

namespace lmx::models::embed {

struct TokenBatch;

struct RerankOptions {
  int64_t max_batch_tokens = 8192;
};

struct RerankScores {
  std::vector<float> scores;  // the first label's logit per document, in input order
  size_t truncated = 0;       // pairs cut at max_length()
};

class CrossEncoder {
 public:
  static CrossEncoder load(const std::filesystem::path& dir, Device device = Device::cpu());
  CrossEncoder(CrossEncoder&&) noexcept;
  CrossEncoder& operator=(CrossEncoder&&) noexcept;
  ~CrossEncoder();

  // Needs the folder's tokenizer.
  RerankScores score(std::string_view query, std::span<const std::string> documents,
                     const RerankOptions& options = {}) const;
  // The classifier's logits f32 [batch, labels] of one padded batch (ids with type ids).
  Tensor logits(const TokenBatch& batch) const;
  int64_t num_labels() const;
  int64_t max_length() const;
  const tokenizer::Tokenizer& tokenizer() const;

 private:
  struct Impl;
  explicit CrossEncoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Cuts a pair encoding (two runs of ordinary tokens between special tokens) to `max_length`
// ids as HF's longest_first does (the tokenizers library's rule: the shorter run keeps its
// tokens if they fit in half the budget, else the runs get the budget's floor and ceiling
// halves, the first run the floor on a tie). False when it already fits; InvalidArgument
// when the special tokens alone exceed max_length.
bool truncate_pair_longest_first(tokenizer::Encoding& e, int64_t max_length);

}  // namespace lmx::models::embed
