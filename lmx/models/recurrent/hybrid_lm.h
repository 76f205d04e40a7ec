// A decoder whose layers mix attention with recurrent mixers (LFM2's short conv,
// Jamba's Mamba, ...): embeddings -> layers of (norm, attention or recurrent mixer, or
// both side by side, residual, norm, feed-forward, residual) -> final norm -> output
// projection. A family file fills a HybridSpec; attention layers get KV caches from
// generation, recurrent layers their StateCache (make_layer_cache). The cache list has
// one slot per mixer: a layer with both (Falcon-H1) takes two, its state then its KV
// cache, so num_layers() counts cache slots.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lmx/models/language_model.h"
#include "lmx/models/transformer.h"
#include "lmx/nn/attention.h"
#include "lmx/nn/mlp.h"
#include "lmx/nn/norm.h"
#include "lmx/nn/rope.h"
#include "lmx/nn/ssm/recurrent_mixer.h"

namespace lmx::models::recurrent {

struct HybridLayerSpec {
  // Set: a recurrent layer built by this function; empty: an attention layer.
  std::function<std::unique_ptr<nn::RecurrentMixer>()> make_mixer;
  std::string mixer_name = "self_attn";  // checkpoint name of the mixer ("conv", "mamba", ...)
  nn::AttentionOptions attention;        // rope filled in by the model
  std::string ffn_name = "mlp";          // "" = no feed-forward in this layer
  bool moe = false;
  nn::MlpOptions mlp;
  nn::MoeOptions moe_options;
  // Set with make_mixer: attention runs beside the recurrent mixer on the same normed
  // input and the two outputs add up (Falcon-H1).
  bool parallel_attention = false;
  // > 0: beside the experts a shared expert of this intermediate size, a gated MLP at
  // `shared_expert_name` ("" = "<ffn>.shared_expert"), weighted by
  // sigmoid("<name>_gate"(x)) when shared_expert_gate (Qwen3-Next) or not (Granite 4.0).
  int64_t shared_expert_intermediate = 0;
  std::string shared_expert_name;
  bool shared_expert_gate = true;
};

struct HybridSpec {
  std::string model_type;
  int64_t vocab = 0;
  int64_t hidden = 0;
  float norm_eps = 1e-6f;
  bool norm_unit_offset = false;  // the decoder norms scale by (1 + w) (Qwen3-Next)
  std::string pre_mixer_norm = "input_layernorm";
  std::string pre_ffn_norm = "post_attention_layernorm";
  std::string final_norm = "norm";
  bool tie_embeddings = false;
  bool use_rope = true;  // false: attention without positions (Jamba)
  nn::RopeConfig rope;
  std::vector<HybridLayerSpec> layers;
  // Granite's multipliers: the embeddings, each mixer's and feed-forward's output before
  // its residual, and the logits (1 / logits_scaling) are scaled by these.
  float embedding_scale = 1.0f;
  float residual_scale = 1.0f;
  float logits_scale = 1.0f;
  float final_softcap = 0.0f;  // logits -> cap * tanh(logits / cap) (RecurrentGemma; 0 = off)
  // Checkpoint names -> the shared blocks' names (e.g. LFM2's "feed_forward.w1" ->
  // "feed_forward.gate_proj"), applied to every key by sanitize (substring rules).
  std::vector<std::pair<std::string, std::string>> renames;
  // A family's own fix-ups, run before the renames (Falcon-H1 folds its multipliers
  // into the weights, Granite splits its fused shared MLP).
  std::function<void(WeightDict&)> sanitize;
  // Depthwise conv weights kept as MLX's [channels, kernel, 1] instead of torch's
  // [channels, 1, kernel]: checkpoints are brought to the layout the model registers.
  bool conv_mlx_layout = false;
};

// A HybridSpec with what a Llama-style config reader found (model_type, vocab, hidden,
// norm epsilon, tied embeddings, the first rope); layers and names still to fill in.
HybridSpec hybrid_spec(const TransformerSpec& base);

class HybridLM : public LanguageModel {
 public:
  explicit HybridLM(HybridSpec spec);
  Tensor forward(const Tensor& tokens, nn::KVCacheList* caches, const ForwardOptions& options) override;
  int64_t vocab_size() const override { return spec_.vocab; }
  int64_t num_layers() const override { return static_cast<int64_t>(slot_kinds_.size()); }
  std::vector<int64_t> layer_windows() const override;
  std::unique_ptr<nn::KVCache> make_layer_cache(int64_t slot) const override;
  void sanitize(WeightDict& weights) const override;

 private:
  struct Layer : nn::Module {
    Layer(const HybridSpec& spec, HybridLayerSpec& ls, const nn::RotaryEmbedding* rope);
    // cache: the mixer's (the state cache of a recurrent layer, else the KV cache);
    // attn_cache: the KV cache of parallel attention.
    Tensor forward(const Tensor& x, nn::KVCache* cache, nn::KVCache* attn_cache, const HybridSpec& spec) const;
    std::unique_ptr<nn::RMSNorm> pre_mixer, pre_ffn;
    std::unique_ptr<nn::Attention> attn;
    std::unique_ptr<nn::RecurrentMixer> mixer;
    std::unique_ptr<nn::Mlp> mlp;
    std::unique_ptr<nn::SparseMoe> moe;
    std::unique_ptr<nn::Mlp> shared_expert;
    std::unique_ptr<nn::Linear> shared_expert_gate;
  };
  struct Prefix : nn::Module {
    using nn::Module::register_module;
  };

  HybridSpec spec_;
  std::unique_ptr<nn::RotaryEmbedding> rope_;
  std::unique_ptr<nn::Embedding> embed_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<size_t> first_slot_;  // per layer: its first cache slot
  std::vector<int64_t> slot_kinds_;  // per cache slot: -1 a state cache, else the attention window
  std::unique_ptr<nn::RMSNorm> norm_;
  std::unique_ptr<nn::Linear> lm_head_;
  Prefix body_;  // "model."
};

}  // namespace lmx::models::recurrent
