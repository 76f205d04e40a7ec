// ModernBERT: pre-norm layers without biases (LayerNorm without bias unless norm_bias),
// fused qkv with rotary positions, a GeGLU MLP, global layers (full attention, rope base
// 160k) among local ones (a token sees |i - j| <= local_attention / 2, rope base 10k), a
// norm after the embeddings and a final norm. Transformers runs it unpadded (or masks
// padding); here each row runs alone over exactly its real tokens, which is the same.
#include <memory>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/models/embed/encoder.h"
#include "lmx/models/embed/encoders.h"
#include "lmx/models/llm/common.h"
#include "lmx/nn/attention.h"
#include "lmx/nn/mlp.h"
#include "lmx/nn/norm.h"

namespace lmx::models::embed {
namespace {

std::string modernbert_layer_type(const ConfigReader& c, int64_t i) {
  const int64_t every = c.get_int("global_attn_every_n_layers", 3);
  if (every <= 0) c.fail("global_attn_every_n_layers", "must be positive");
  return i % every == 0 ? "full_attention" : "sliding_attention";
}

// Per-type "rope_parameters" (transformers v5), else the older global_rope_theta /
// local_rope_theta keys with transformers' defaults.
nn::RopeConfig modernbert_rope(const ConfigReader& c, int64_t head_dim, bool local) {
  nn::RopeConfig r = llm::read_rope(c, head_dim, local ? "sliding_attention" : "full_attention");
  if (!c.has("rope_parameters")) {
    r.theta = local ? c.get_positive("local_rope_theta", 10000.0) : c.get_positive("global_rope_theta", 160000.0);
  }
  return r;
}

struct ModernBertOptions {
  nn::AttentionOptions attention;
  nn::MlpOptions mlp;
  float norm_eps = 1e-5f;
  bool norm_bias = false;
};

// x + attn(attn_norm(x)), then h + mlp(mlp_norm(h)); the first layer has no attn_norm
// (the embedding norm precedes it).
class ModernBertLayer : public nn::Module {
 public:
  ModernBertLayer(const ModernBertOptions& o, bool first) {
    if (!first) {
      attn_norm_ = std::make_unique<nn::LayerNorm>(o.attention.hidden, o.norm_eps, o.norm_bias);
      register_module("attn_norm", *attn_norm_);
    }
    attn_ = std::make_unique<nn::Attention>(o.attention);
    mlp_norm_ = std::make_unique<nn::LayerNorm>(o.attention.hidden, o.norm_eps, o.norm_bias);
    mlp_ = std::make_unique<nn::Mlp>(o.mlp);
    register_module("attn", *attn_);
    register_module("mlp_norm", *mlp_norm_);
    register_module("mlp", *mlp_);
  }
  // x [1, seq, hidden] (one row, no padding) -> [1, seq, hidden].
  Tensor forward(const Tensor& x) const {
    Tensor h = ops::add(x, attn_->forward(attn_norm_ ? attn_norm_->forward(x) : x, nullptr));
    return ops::add(h, mlp_->forward(mlp_norm_->forward(h)));
  }

 private:
  std::unique_ptr<nn::LayerNorm> attn_norm_, mlp_norm_;
  std::unique_ptr<nn::Attention> attn_;
  std::unique_ptr<nn::Mlp> mlp_;
};

class ModernBertEncoder : public Encoder {
 public:
  explicit ModernBertEncoder(const ConfigReader& c)
      : vocab_(c.require_int("vocab_size")),
        hidden_(c.require_int("hidden_size")),
        max_positions_(c.get_int("max_position_embeddings", 8192)),
        pad_id_(static_cast<int32_t>(c.get_int("pad_token_id", 50283))) {
    model_type_ = "modernbert";
    const int64_t heads = c.require_int("num_attention_heads");
    const int64_t layers = c.require_int("num_hidden_layers");
    if (heads <= 0 || hidden_ % heads != 0) {
      c.fail("num_attention_heads", "hidden_size " + std::to_string(hidden_) + " is not a multiple of " +
                                        std::to_string(heads) + " heads");
    }
    const int64_t local_attention = c.get_int("local_attention", 128);
    if (local_attention < 0) c.fail("local_attention", "must be >= 0");
    ModernBertOptions o;
    o.norm_eps = static_cast<float>(c.get_non_negative("norm_eps", 1e-5));
    o.norm_bias = c.get_bool("norm_bias", false);
    const bool attention_bias = c.get_bool("attention_bias", false);
    nn::AttentionOptions& a = o.attention;
    a.hidden = hidden_;
    a.heads = a.kv_heads = heads;
    a.head_dim = hidden_ / heads;
    a.qkv_bias = a.o_bias = attention_bias;
    a.fused_qkv = true;  // [q | k | v]
    a.qkv_name = "Wqkv";
    a.o_name = "Wo";
    a.causal = false;
    o.mlp.kind = nn::MlpKind::fused_gated;  // Wi = [input | gate]: act(input) * gate
    o.mlp.hidden = hidden_;
    o.mlp.intermediate = c.require_int("intermediate_size");
    o.mlp.bias = c.get_bool("mlp_bias", false);
    o.mlp.gate_name = "Wi";
    o.mlp.down_name = "Wo";
    const std::string act = c.get_string("hidden_activation", "gelu");
    try {
      o.mlp.act = nn::parse_activation(act);
    } catch (const Unsupported&) {
      c.fail("hidden_activation", "'" + act + "' is not supported");
    }
    global_rope_ = std::make_unique<nn::RotaryEmbedding>(modernbert_rope(c, hidden_ / heads, false));
    local_rope_ = std::make_unique<nn::RotaryEmbedding>(modernbert_rope(c, hidden_ / heads, true));

    word_ = std::make_unique<nn::Embedding>(vocab_, hidden_);
    embed_norm_ = std::make_unique<nn::LayerNorm>(hidden_, o.norm_eps, o.norm_bias);
    register_module("embeddings.tok_embeddings", *word_);
    register_module("embeddings.norm", *embed_norm_);
    const auto types = llm::read_layer_types(c, layers, modernbert_layer_type);
    for (int64_t i = 0; i < layers; ++i) {
      const bool local = types[static_cast<size_t>(i)] == "sliding_attention";
      if (!local && types[static_cast<size_t>(i)] != "full_attention") {
        c.fail("layer_types", "unknown layer type '" + types[static_cast<size_t>(i)] + "'");
      }
      o.attention.rope = local ? local_rope_.get() : global_rope_.get();
      o.attention.window = local ? local_attention / 2 + 1 : 0;  // |i - j| <= local_attention / 2
      layers_.push_back(std::make_unique<ModernBertLayer>(o, i == 0));
      register_module("layers." + std::to_string(i), *layers_.back());
    }
    final_norm_ = std::make_unique<nn::LayerNorm>(hidden_, o.norm_eps, o.norm_bias);
    register_module("final_norm", *final_norm_);
  }

  Tensor forward(const TokenBatch& batch) const override {
    return forward_each_row_alone(batch, hidden_, [this](const TokenBatch& row) {
      Tensor x = embed_norm_->forward(word_->forward(row.ids));
      for (const auto& layer : layers_) x = layer->forward(x);
      return final_norm_->forward(x);
    });
  }
  int64_t hidden_size() const override { return hidden_; }
  int64_t vocab_size() const override { return vocab_; }
  int64_t max_length() const override { return max_positions_; }
  int32_t pad_id() const override { return pad_id_; }
  int64_t type_vocab_size() const override { return 0; }
  // ModernBertFor* checkpoints hold the base model under "model." beside their heads.
  void sanitize(WeightDict& weights) const override {
    strip_prefix_and_heads(weights, {"model."}, {"head.", "decoder.", "classifier.", "drop."});
  }

 private:
  int64_t vocab_, hidden_, max_positions_;
  int32_t pad_id_;
  std::unique_ptr<nn::RotaryEmbedding> global_rope_, local_rope_;
  std::unique_ptr<nn::Embedding> word_;
  std::unique_ptr<nn::LayerNorm> embed_norm_, final_norm_;
  std::vector<std::unique_ptr<ModernBertLayer>> layers_;
};

}  // namespace

std::unique_ptr<Encoder> make_modernbert(const ConfigReader& c) { return std::make_unique<ModernBertEncoder>(c); }

}  // namespace lmx::models::embed
