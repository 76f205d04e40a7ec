// nomic-bert (nomic-embed-text): BERT's post-norm layers with rotary positions instead of
// a position table, fused qkv and a SwiGLU MLP, no biases but the LayerNorms'. Checkpoint
// names are nomic's (emb_ln, encoder.layers.N.attn.Wqkv, mlp.fc11 / fc12 / fc2, norm1 /
// norm2), which transformers' native class also writes; the config is read with
// transformers' key names (hidden_size, ...) or nomic's own (n_embd, n_layer, ...).
#include <memory>
#include <vector>

#include "lmx/core/ops/elementwise.h"
#include "lmx/models/embed/encoder.h"
#include "lmx/models/embed/encoder_layer.h"
#include "lmx/models/embed/encoders.h"
#include "lmx/models/llm/common.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/mlp.h"
#include "lmx/nn/norm.h"

namespace lmx::models::embed {
namespace {

// transformers' key, else nomic's remote-code key.
int64_t int_key(const ConfigReader& c, const std::string& key, const std::string& nomic_key) {
  return !c.has(key) && c.has(nomic_key) ? c.require_int(nomic_key) : c.require_int(key);
}

struct NomicOptions {
  int64_t hidden = 0, heads = 0;
  const nn::RotaryEmbedding* rope = nullptr;
  nn::MlpOptions mlp;
  float norm_eps = 1e-12f;
};

// h = norm1(x + out_proj(attention(rotary(Wqkv x)))); y = norm2(h + mlp(h)), over a padded
// batch: the projections and the MLP run on every token of the batch at once, attention on
// each row's real tokens only (bidirectional_attention_heads), so a row's result does not
// depend on the batch it is in.
class NomicBertLayer : public nn::Module {
 public:
  explicit NomicBertLayer(const NomicOptions& o) : o_(o) {
    qkv_ = std::make_unique<nn::Linear>(o.hidden, 3 * o.hidden, false);  // [q | k | v]
    out_ = std::make_unique<nn::Linear>(o.hidden, o.hidden, false);
    mlp_ = std::make_unique<nn::Mlp>(o.mlp);
    norm1_ = std::make_unique<nn::LayerNorm>(o.hidden, o.norm_eps);
    norm2_ = std::make_unique<nn::LayerNorm>(o.hidden, o.norm_eps);
    register_module("attn.Wqkv", *qkv_);
    register_module("attn.out_proj", *out_);
    register_module("mlp", *mlp_);
    register_module("norm1", *norm1_);
    register_module("norm2", *norm2_);
  }
  // x [batch, seq, hidden] (row b: lengths[b] real tokens) -> [batch, seq, hidden].
  Tensor forward(const Tensor& x, const std::vector<int64_t>& lengths) const {
    const int64_t B = x.dim(0), L = x.dim(1), H = o_.heads, D = o_.hidden / o_.heads;
    Tensor qkv = qkv_->forward(x);  // [B, L, 3 * hidden]
    // part i of [q | k | v] as [B, H, L, D] (strided)
    auto part = [&](int64_t i) {
      return qkv.slice(2, i * o_.hidden, (i + 1) * o_.hidden).reshape({B, L, H, D}).transpose(1, 2);
    };
    Tensor attn = bidirectional_attention_heads(o_.rope->apply(part(0), 0), o_.rope->apply(part(1), 0), part(2),
                                                lengths);
    Tensor h = norm1_->forward(ops::add(x, out_->forward(attn)));
    return norm2_->forward(ops::add(h, mlp_->forward(h)));
  }

 private:
  NomicOptions o_;
  std::unique_ptr<nn::Linear> qkv_, out_;
  std::unique_ptr<nn::Mlp> mlp_;
  std::unique_ptr<nn::LayerNorm> norm1_, norm2_;
};

class NomicBertEncoder : public Encoder {
 public:
  explicit NomicBertEncoder(const ConfigReader& c)
      : vocab_(c.require_int("vocab_size")),
        hidden_(int_key(c, "hidden_size", "n_embd")),
        max_positions_(c.has("max_position_embeddings") ? c.get_int("max_position_embeddings", 2048)
                                                        : c.get_int("n_positions", 2048)),
        type_vocab_(c.get_int("type_vocab_size", 2)),
        pad_id_(static_cast<int32_t>(c.get_int("pad_token_id", 0))) {
    model_type_ = "nomic_bert";
    for (const char* key : {"qkv_proj_bias", "mlp_fc1_bias", "mlp_fc2_bias", "prenorm", "rotary_emb_interleaved"}) {
      if (c.get_bool(key, false)) c.fail(key, "is not supported (only nomic-embed's settings: false)");
    }
    if (c.get_double("rotary_emb_fraction", 1.0) != 1.0) c.fail("rotary_emb_fraction", "must be 1 (full rotary)");
    if (c.has("rotary_scaling_factor") && !c.json().at("rotary_scaling_factor").is_null()) {
      c.fail("rotary_scaling_factor", "dynamic NTK rotary scaling is not supported");
    }
    if (c.has("rotary_emb_scale_base") && !c.json().at("rotary_emb_scale_base").is_null()) {
      c.fail("rotary_emb_scale_base", "xPos rotary scaling is not supported");
    }
    if (type_vocab_ < 1) c.fail("type_vocab_size", "must be at least 1");
    const int64_t heads = int_key(c, "num_attention_heads", "n_head");
    if (heads <= 0 || hidden_ % heads != 0) {
      c.fail("num_attention_heads", "hidden size " + std::to_string(hidden_) + " is not a multiple of " +
                                        std::to_string(heads) + " heads");
    }
    const std::string act = c.get_string("hidden_act", c.get_string("activation_function", "silu"));
    if (act != "silu" && act != "swiglu") c.fail("hidden_act", "'" + act + "' is not supported (SwiGLU only)");

    nn::RopeConfig rope = llm::read_rope(c, hidden_ / heads);
    if (!c.has("rope_parameters") && !c.has("rope_theta")) rope.theta = c.get_positive("rotary_emb_base", 1000.0);
    rope_ = std::make_unique<nn::RotaryEmbedding>(rope);
    NomicOptions o;
    o.norm_eps = static_cast<float>(c.has("layer_norm_eps") ? c.get_non_negative("layer_norm_eps", 1e-12)
                                                            : c.get_non_negative("layer_norm_epsilon", 1e-12));
    o.hidden = hidden_;
    o.heads = heads;
    o.rope = rope_.get();
    o.mlp.kind = nn::MlpKind::gated;  // fc2(fc11(x) * silu(fc12(x)))
    o.mlp.hidden = hidden_;
    o.mlp.intermediate = int_key(c, "intermediate_size", "n_inner");
    o.mlp.act = nn::Activation::silu;
    o.mlp.gate_name = "fc12";
    o.mlp.up_name = "fc11";
    o.mlp.down_name = "fc2";

    word_ = std::make_unique<nn::Embedding>(vocab_, hidden_);
    token_type_ = std::make_unique<nn::Embedding>(type_vocab_, hidden_);
    embed_norm_ = std::make_unique<nn::LayerNorm>(hidden_, o.norm_eps);
    register_module("embeddings.word_embeddings", *word_);
    register_module("embeddings.token_type_embeddings", *token_type_);
    register_module("emb_ln", *embed_norm_);
    const int64_t layers = int_key(c, "num_hidden_layers", "n_layer");
    for (int64_t i = 0; i < layers; ++i) {
      layers_.push_back(std::make_unique<NomicBertLayer>(o));
      register_module("encoder.layers." + std::to_string(i), *layers_.back());
    }
  }

  Tensor forward(const TokenBatch& batch) const override {
    Tensor types = batch.type_ids.defined() ? batch.type_ids
                                            : Tensor::zeros(batch.ids.shape(), Dtype::i32, batch.ids.device());
    Tensor x = embed_norm_->forward(ops::add(word_->forward(batch.ids), token_type_->forward(types)));
    for (const auto& layer : layers_) x = layer->forward(x, batch.lengths);
    return x;
  }
  int64_t hidden_size() const override { return hidden_; }
  int64_t vocab_size() const override { return vocab_; }
  int64_t max_length() const override { return max_positions_; }
  int32_t pad_id() const override { return pad_id_; }
  int64_t type_vocab_size() const override { return type_vocab_; }
  void sanitize(WeightDict& weights) const override {
    strip_prefix_and_heads(weights, {"nomic_bert.", "bert."}, {"cls.", "lm_head.", "pooler.", "classifier."});
  }

 private:
  int64_t vocab_, hidden_, max_positions_, type_vocab_;
  int32_t pad_id_;
  std::unique_ptr<nn::RotaryEmbedding> rope_;
  std::unique_ptr<nn::Embedding> word_, token_type_;
  std::unique_ptr<nn::LayerNorm> embed_norm_;
  std::vector<std::unique_ptr<NomicBertLayer>> layers_;
};

}  // namespace

std::unique_ptr<Encoder> make_nomic_bert(const ConfigReader& c) { return std::make_unique<NomicBertEncoder>(c); }

}  // namespace lmx::models::embed
