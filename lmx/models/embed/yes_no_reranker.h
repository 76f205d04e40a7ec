// Rerankers that are causal LMs asked a yes/no question (Qwen3-Reranker, its model card's
// form): the (instruction, query, document) triple is written into a fixed chat prompt,
// and the score is softmax over the logits of "no" and "yes" at the last position, taking
// "yes". Internal to lmx/models/embed (CrossEncoder loads folders of this kind).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lmx/models/config_reader.h"
#include "lmx/models/embed/encoder.h"
#include "lmx/models/language_model.h"

namespace lmx::tokenizer {
class Tokenizer;
}

namespace lmx::models::embed {

// The task when the caller gives none (the model card's default).
extern const char* const kDefaultRerankInstruction;

// A folder whose config names a causal LM (architectures "*ForCausalLM").
bool is_causal_lm_config(const ConfigReader& config);

class YesNoReranker {
 public:
  // Needs the folder's tokenizer, with single tokens "yes" and "no".
  YesNoReranker(const std::filesystem::path& dir, Device device, const tokenizer::Tokenizer& tok);
  // ids of one prompt: prefix + the formatted triple (cut at the end to fit max_length)
  // + suffix; `truncated` tells whether it was cut.
  std::vector<int32_t> prompt_ids(const tokenizer::Tokenizer& tok, std::string_view instruction, std::string_view query,
                                  std::string_view document, bool* truncated) const;
  // f32 [batch, 2]: the logits of "no" and "yes" after each row's last real token. Each row
  // runs alone (no padding reaches the model).
  Tensor logits(const TokenBatch& batch) const;
  // softmax((no, yes))[yes] of one row of logits().
  static float yes_probability(float no_logit, float yes_logit);
  int64_t max_length() const { return max_length_; }
  int32_t pad_id() const { return pad_id_; }

 private:
  std::unique_ptr<LanguageModel> lm_;
  Device device_;
  int32_t yes_ = 0, no_ = 0, pad_id_ = 0;
  int64_t max_length_ = 0;
  std::vector<int32_t> prefix_, suffix_;
};

}  // namespace lmx::models::embed
