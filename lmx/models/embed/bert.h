// BERT, RoBERTa and XLM-RoBERTa encoders (one module tree; RoBERTa differs in its
// position ids, which start after the padding id and skip padding tokens, as HF
// computes them from the ids).
#pragma once

#include <memory>
#include <vector>

#include "lmx/models/embed/encoder.h"
#include "lmx/models/embed/encoder_layer.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/norm.h"

namespace lmx::models::embed {

struct BertConfig {
  int64_t vocab = 0;
  int64_t hidden = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t intermediate = 0;
  int64_t max_positions = 0;
  int64_t type_vocab = 2;
  float norm_eps = 1e-12f;
  nn::Activation act = nn::Activation::gelu;
  int32_t pad_id = 0;
  bool roberta_positions = false;  // roberta, xlm-roberta
  bool pooler = false;             // keep "pooler.dense" (sequence classification)
};

BertConfig read_bert_config(const ConfigReader& c, bool with_pooler);

class BertEncoder : public Encoder {
 public:
  BertEncoder(const BertConfig& config, std::string model_type);
  Tensor forward(const TokenBatch& batch) const override;
  int64_t hidden_size() const override { return c_.hidden; }
  int64_t vocab_size() const override { return c_.vocab; }
  int64_t max_length() const override;
  int32_t pad_id() const override { return c_.pad_id; }
  int64_t type_vocab_size() const override { return c_.type_vocab; }
  void sanitize(WeightDict& weights) const override;
  // BERT's pooler: tanh(dense(hidden[:, 0])) -> [batch, hidden]; needs `pooler`.
  Tensor pool_first_token(const Tensor& hidden) const;

 private:
  Tensor position_ids(const TokenBatch& batch) const;  // i32 [batch, seq]

  BertConfig c_;
  std::unique_ptr<nn::Embedding> word_, position_, token_type_;
  std::unique_ptr<nn::LayerNorm> embed_norm_;
  std::vector<std::unique_ptr<PostNormEncoderLayer>> layers_;
  std::unique_ptr<nn::Linear> pooler_;
};

}  // namespace lmx::models::embed
