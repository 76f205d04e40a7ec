// Cross-encoder rerankers: BertForSequenceClassification and
// (XLM-)RobertaForSequenceClassification folders. A (query, document) pair is encoded as
// one input the way HF does (token types 0 then 1 where the model has two), truncated
// longest-first at the model's limit, and the classifier's logits are the scores.
// A causal LM folder (architectures "*ForCausalLM": Qwen3-Reranker) is a yes/no reranker
// instead: the pair goes into its chat prompt with an instruction, and the score is the
// probability of "yes" against "no" for the next token (yes_no_reranker.h).
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
  // Yes/no rerankers: the task in the prompt (empty: the model card's web-search default).
  std::string instruction;
};

struct RerankScores {
  // Per document, in input order: the first label's logit (classifiers) or the
  // probability of "yes" (yes/no rerankers).
  std::vector<float> scores;
  size_t truncated = 0;  // pairs cut at max_length()
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
  // The classifier's logits f32 [batch, labels] of one padded batch (ids with type ids);
  // for a yes/no reranker, the logits of "no" and "yes" [batch, 2] after each row's last
  // real token (the ids being whole prompts).
  Tensor logits(const TokenBatch& batch) const;
  bool is_yes_no() const;
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
