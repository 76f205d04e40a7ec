#include "lmx/models/embed/bert.h"

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/models/embed/encoders.h"

namespace lmx::models::embed {

BertConfig read_bert_config(const ConfigReader& c, bool with_pooler) {
  BertConfig b;
  b.vocab = c.require_int("vocab_size");
  b.hidden = c.require_int("hidden_size");
  b.layers = c.require_int("num_hidden_layers");
  b.heads = c.require_int("num_attention_heads");
  b.intermediate = c.require_int("intermediate_size");
  b.max_positions = c.get_int("max_position_embeddings", 512);
  b.type_vocab = c.get_int("type_vocab_size", 2);
  b.norm_eps = static_cast<float>(c.get_non_negative("layer_norm_eps", 1e-12));
  b.act = nn::parse_activation(c.get_string("hidden_act", "gelu"));
  const std::string type = c.get_string("model_type", "bert");
  b.roberta_positions = type == "roberta" || type == "xlm-roberta";
  b.pad_id = static_cast<int32_t>(c.get_int("pad_token_id", b.roberta_positions ? 1 : 0));
  const std::string positions = c.get_string("position_embedding_type", "absolute");
  if (positions != "absolute") {
    c.fail("position_embedding_type", "'" + positions + "' is not supported (only \"absolute\")");
  }
  if (b.type_vocab < 1) c.fail("type_vocab_size", "must be at least 1");
  if (b.roberta_positions && b.max_positions <= b.pad_id + 1) {
    c.fail("max_position_embeddings", "leaves no position after the padding id " + std::to_string(b.pad_id));
  }
  b.pooler = with_pooler;
  return b;
}

BertEncoder::BertEncoder(const BertConfig& config, std::string model_type) : c_(config) {
  model_type_ = std::move(model_type);
  word_ = std::make_unique<nn::Embedding>(c_.vocab, c_.hidden);
  position_ = std::make_unique<nn::Embedding>(c_.max_positions, c_.hidden);
  token_type_ = std::make_unique<nn::Embedding>(c_.type_vocab, c_.hidden);
  embed_norm_ = std::make_unique<nn::LayerNorm>(c_.hidden, c_.norm_eps);
  register_module("embeddings.word_embeddings", *word_);
  register_module("embeddings.position_embeddings", *position_);
  register_module("embeddings.token_type_embeddings", *token_type_);
  register_module("embeddings.LayerNorm", *embed_norm_);
  const EncoderLayerOptions lo{.hidden = c_.hidden, .heads = c_.heads, .intermediate = c_.intermediate,
                               .norm_eps = c_.norm_eps, .act = c_.act};
  for (int64_t i = 0; i < c_.layers; ++i) {
    layers_.push_back(std::make_unique<PostNormEncoderLayer>(lo, kBertLayerNames));
    register_module("encoder.layer." + std::to_string(i), *layers_.back());
  }
  if (c_.pooler) {
    pooler_ = std::make_unique<nn::Linear>(c_.hidden, c_.hidden, true);
    register_module("pooler.dense", *pooler_);
  }
}

int64_t BertEncoder::max_length() const {
  // RoBERTa's first real position is pad_id + 1.
  return c_.roberta_positions ? c_.max_positions - c_.pad_id - 1 : c_.max_positions;
}

Tensor BertEncoder::position_ids(const TokenBatch& batch) const {
  const int64_t B = batch.ids.dim(0), L = batch.ids.dim(1);
  std::vector<int32_t> pos(static_cast<size_t>(B * L));
  if (!c_.roberta_positions) {
    for (int64_t b = 0; b < B; ++b)
      for (int64_t s = 0; s < L; ++s) pos[static_cast<size_t>(b * L + s)] = static_cast<int32_t>(s);
  } else {
    // HF: cumsum(ids != pad) * (ids != pad) + pad, from the ids themselves.
    const std::vector<int64_t> ids = batch.ids.to_int_vector();
    for (int64_t b = 0; b < B; ++b) {
      int32_t count = 0;
      for (int64_t s = 0; s < L; ++s) {
        const size_t i = static_cast<size_t>(b * L + s);
        const bool real = ids[i] != c_.pad_id;
        count += real ? 1 : 0;
        pos[i] = (real ? count : 0) + c_.pad_id;
      }
    }
  }
  return Tensor::from_vector(pos, {B, L}).to(batch.ids.device());
}

Tensor BertEncoder::forward(const TokenBatch& batch) const {
  const int64_t B = batch.ids.dim(0), L = batch.ids.dim(1);
  Tensor types = batch.type_ids.defined() ? batch.type_ids : Tensor::zeros({B, L}, Dtype::i32, batch.ids.device());
  Tensor x = ops::add(word_->forward(batch.ids), position_->forward(position_ids(batch)));
  x = embed_norm_->forward(ops::add(x, token_type_->forward(types)));
  for (const auto& layer : layers_) x = layer->forward(x, batch.lengths);
  return x;
}

Tensor BertEncoder::pool_first_token(const Tensor& hidden) const {
  if (!pooler_) throw InvalidArgument(model_type_ + ": this encoder was built without its pooler");
  return ops::tanh(forward_row_by_row(*pooler_, hidden.select(1, 0).contiguous()));
}

void BertEncoder::sanitize(WeightDict& weights) const {
  std::vector<std::string> dropped = {"cls.", "lm_head.", "classifier.", "embeddings.position_ids"};
  if (!c_.pooler) dropped.push_back("pooler.");
  strip_prefix_and_heads(weights, {"bert.", "roberta.", "model."}, dropped);
}

}  // namespace lmx::models::embed
