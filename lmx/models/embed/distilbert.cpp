// DistilBERT: BERT's post-norm layers without token types, under other checkpoint names.
#include <memory>
#include <vector>

#include "lmx/core/ops/elementwise.h"
#include "lmx/models/embed/encoder.h"
#include "lmx/models/embed/encoder_layer.h"
#include "lmx/models/embed/encoders.h"

namespace lmx::models::embed {
namespace {

class DistilBertEncoder : public Encoder {
 public:
  explicit DistilBertEncoder(const ConfigReader& c)
      : vocab_(c.require_int("vocab_size")),
        dim_(c.require_int("dim")),
        max_positions_(c.get_int("max_position_embeddings", 512)),
        pad_id_(static_cast<int32_t>(c.get_int("pad_token_id", 0))) {
    model_type_ = "distilbert";
    if (c.get_bool("sinusoidal_pos_embds", false)) {
      c.fail("sinusoidal_pos_embds", "sinusoidal position embeddings are not supported");
    }
    word_ = std::make_unique<nn::Embedding>(vocab_, dim_);
    position_ = std::make_unique<nn::Embedding>(max_positions_, dim_);
    norm_ = std::make_unique<nn::LayerNorm>(dim_, 1e-12f);  // fixed in HF's DistilBERT
    register_module("embeddings.word_embeddings", *word_);
    register_module("embeddings.position_embeddings", *position_);
    register_module("embeddings.LayerNorm", *norm_);
    const EncoderLayerOptions lo{.hidden = dim_, .heads = c.require_int("n_heads"),
                                 .intermediate = c.require_int("hidden_dim"), .norm_eps = 1e-12f,
                                 .act = nn::parse_activation(c.get_string("activation", "gelu"))};
    const int64_t layers = c.require_int("n_layers");
    for (int64_t i = 0; i < layers; ++i) {
      layers_.push_back(std::make_unique<PostNormEncoderLayer>(lo, kDistilBertLayerNames));
      register_module("transformer.layer." + std::to_string(i), *layers_.back());
    }
  }

  Tensor forward(const TokenBatch& batch) const override {
    const int64_t B = batch.ids.dim(0), L = batch.ids.dim(1);
    Tensor positions = Tensor::arange(L, Dtype::i32).unsqueeze(0).expand({B, L}).contiguous().to(batch.ids.device());
    Tensor x = norm_->forward(ops::add(word_->forward(batch.ids), position_->forward(positions)));
      for (const auto& layer : layers_) x = layer->forward(x, batch.lengths);
    return x;
  }
  int64_t hidden_size() const override { return dim_; }
  int64_t vocab_size() const override { return vocab_; }
  int64_t max_length() const override { return max_positions_; }
  int32_t pad_id() const override { return pad_id_; }
  int64_t type_vocab_size() const override { return 0; }
  void sanitize(WeightDict& weights) const override {
    strip_prefix_and_heads(weights, {"distilbert."}, {"embeddings.position_ids", "vocab_transform.", "vocab_layer_norm.", "vocab_projector.",
                                                    "pre_classifier.", "classifier.", "qa_outputs."});
  }

 private:
  int64_t vocab_, dim_, max_positions_;
  int32_t pad_id_;
  std::unique_ptr<nn::Embedding> word_, position_;
  std::unique_ptr<nn::LayerNorm> norm_;
  std::vector<std::unique_ptr<PostNormEncoderLayer>> layers_;
};

}  // namespace

std::unique_ptr<Encoder> make_distilbert(const ConfigReader& c) {
  return std::make_unique<DistilBertEncoder>(c);
}

}  // namespace lmx::models::embed
