// Text encoders (BERT family): token ids of a right-padded batch -> the last hidden state,
// with bidirectional attention over each row's real tokens only.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lmx/models/config_reader.h"
#include "lmx/models/language_model.h"
#include "lmx/nn/module.h"

namespace lmx::models::embed {

// A right-padded batch: row b holds lengths[b] real tokens, then padding.
struct TokenBatch {
  Tensor ids;                    // i32 [batch, seq]
  Tensor type_ids;               // i32 [batch, seq]; undefined = all 0
  std::vector<int64_t> lengths;  // [batch], each in [1, seq]
};

class Encoder : public nn::Module {
 public:
  // -> last hidden state f32 [batch, seq, hidden]; rows past a length are not meaningful.
  virtual Tensor forward(const TokenBatch& batch) const = 0;
  virtual int64_t hidden_size() const = 0;
  virtual int64_t vocab_size() const = 0;
  // The longest input the position table allows (0: no table limit).
  virtual int64_t max_length() const = 0;
  // Id used for padding (what HF pads with; RoBERTa's positions depend on it).
  virtual int32_t pad_id() const = 0;
  // Number of token types (0 or 1: the model has no type embedding to speak of).
  virtual int64_t type_vocab_size() const = 0;
  // Strips a base-model prefix ("bert.", "roberta.", ...) and drops heads and buffers
  // that embeddings do not use (MLM heads, "embeddings.position_ids", the pooler).
  virtual void sanitize(WeightDict& weights) const = 0;
  const std::string& model_type() const { return model_type_; }

 protected:
  std::string model_type_;
};

// Builds the (unloaded) encoder of a config: bert, roberta, xlm-roberta, distilbert,
// modernbert, nomic_bert, and decoder LLMs used as embedders (qwen3, gemma3_text).
// `with_pooler`: keep BERT's pooler (the head of BertForSequenceClassification).
std::unique_ptr<Encoder> create_encoder(const ConfigReader& config, bool with_pooler = false);
// The model types create_encoder builds.
std::vector<std::string> encoder_model_types();

// Checks a batch against an encoder: ids in the vocabulary, lengths in range, type ids in
// [0, type_vocab_size). InvalidArgument naming the row and the value.
void check_batch(const Encoder& encoder, const TokenBatch& batch);

}  // namespace lmx::models::embed
