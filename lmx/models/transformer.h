// The decoder-only transformer that every supported LLM architecture instantiates:
// embeddings -> layers of (attention, feed-forward) with the architecture's norm
// placement -> final norm -> output projection. An architecture file fills a
// TransformerSpec from its config.json; anything it needs beyond the spec's switches
// is a missing shared block, not a special case here.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lmx/models/language_model.h"
#include "lmx/nn/attention.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/mla.h"
#include "lmx/nn/mlp.h"
#include "lmx/nn/moe.h"
#include "lmx/nn/norm.h"
#include "lmx/nn/rope.h"

namespace lmx {
class Communicator;
}

namespace lmx::models {

struct LayerSpec {
  nn::AttentionOptions attention;  // rope pointer filled in by the model
  // A shard's kv heads (attention.kv_heads of them) start at this head of the whole
  // model's (tensor_parallel.h); its caches hold those heads.
  int64_t kv_head_begin = 0;
  int rope_index = 0;              // which of TransformerSpec::ropes (-1: no rope)
  bool moe = false;
  nn::MlpOptions mlp;
  nn::MoeOptions moe_options;
  bool mla = false;  // multi-head latent attention (mla_options) instead of `attention`
  nn::MlaOptions mla_options;
};

struct TransformerSpec {
  std::string model_type;
  int64_t vocab = 0;
  int64_t hidden = 0;
  nn::NormKind norm_kind = nn::NormKind::rms;
  float norm_eps = 1e-6f;
  bool norm_unit_offset = false;  // Gemma: scale by (1 + w)
  bool norm_bias = true;          // LayerNorm only
  // Norm placement, by checkpoint name ("" = absent). Llama: pre-attention
  // "input_layernorm", pre-FFN "post_attention_layernorm".
  std::string pre_attn_norm = "input_layernorm";
  std::string post_attn_norm;
  std::string pre_ffn_norm = "post_attention_layernorm";
  std::string post_ffn_norm;
  std::string mlp_name = "mlp";
  // Checkpoint name pieces replaced by ours before loading (DBRX's own naming).
  std::vector<std::pair<std::string, std::string>> renames;
  float embed_scale = 1.0f;          // multiplies the embeddings (Gemma sqrt(hidden), Granite)
  float residual_multiplier = 1.0f;  // scales each block's output before the residual add
  float logits_divisor = 1.0f;       // Granite logits_scaling
  float final_softcap = 0.0f;        // Gemma-2 final logit soft-capping
  bool tie_embeddings = false;
  bool lm_head_bias = false;         // Phi
  // Attention and MLP both read the block's input (the MLP through pre_ffn_norm, or the
  // attention's normed input when that is empty) and both are added to it (Phi,
  // GPT-NeoX, Cohere).
  bool parallel_residual = false;
  bool norm_weight = true;           // false: RMSNorms without a learned scale (NanoChat)
  bool norm_embeddings = false;      // the final norm also normalizes the embeddings (NanoChat)
  int64_t positions = 0;             // learned absolute position embeddings (GPT-2), 0 = none
  // Checkpoint names of the parts that families spell differently (GPT-2: transformer.wte,
  // transformer.wpe, transformer.h.N.attn, transformer.ln_f; GPT-NeoX: gpt_neox.embed_in,
  // gpt_neox.layers.N.attention, gpt_neox.final_layer_norm, embed_out).
  std::string body_name = "model";
  std::string embed_name = "embed_tokens";
  std::string positions_name = "wpe";
  std::string layers_name = "layers";
  std::string attn_name = "self_attn";
  std::string final_norm_name = "norm";
  std::string lm_head_name = "lm_head";
  // The family's own checkpoint fix-ups (GPT-2's transposed Conv1D weights), run first
  // in TransformerLM::sanitize.
  void (*sanitize)(WeightDict& weights, const TransformerSpec& spec) = nullptr;
  std::vector<nn::RopeConfig> ropes;
  std::vector<LayerSpec> layers;
  // Tensor parallelism (lmx/models/tensor_parallel.h): this spec is rank `rank` of `world`;
  // with vocab_parallel, its embedding and head hold rows [vocab_begin, vocab_begin + vocab)
  // of full_vocab.
  struct Shard {
    int rank = 0;
    int world = 1;
    bool vocab_parallel = false;
    int64_t vocab_begin = 0;
    int64_t full_vocab = 0;
  } shard;
};

class TransformerLM : public LanguageModel {
 public:
  explicit TransformerLM(TransformerSpec spec);
  Tensor forward(const Tensor& tokens, nn::KVCacheList* caches, const ForwardOptions& options) override;
  int64_t vocab_size() const override { return spec_.shard.vocab_parallel ? spec_.shard.full_vocab : spec_.vocab; }
  int64_t num_layers() const override { return static_cast<int64_t>(layers_.size()); }
  std::vector<int64_t> layer_windows() const override;
  void sanitize(WeightDict& weights) const override;
  bool positions_depend_on_length() const override;
  const TransformerSpec& spec() const { return spec_; }
  // A shard (spec().shard.world > 1) runs its collectives through `comm` (not owned).
  void set_communicator(Communicator* comm);
  Communicator* communicator() const { return comm_; }
  // The token embeddings; a vocabulary-parallel shard looks up its own rows (zero for the
  // other ranks' tokens) and adds the ranks' results.
  Tensor embed_tokens(const Tensor& tokens) const;

 private:
  struct Layer : nn::Module {
    Layer(const TransformerSpec& spec, const LayerSpec& ls, const nn::RotaryEmbedding* rope);
    // The layer's input is x + x_delta (x_delta undefined: x). With `delta`, the last
    // residual add is left to the next norm (fused with it): the output is the returned
    // tensor + *delta; else the returned tensor.
    // comm: a shard's group, whose partial sums the attention and MLP outputs are (null: whole).
    Tensor forward(const Tensor& x, const Tensor& x_delta, nn::KVCache* cache, const TransformerSpec& spec,
                   const nn::AttentionContext* ctx, Tensor* delta, Communicator* comm) const;
    std::unique_ptr<nn::Norm> pre_attn, post_attn, pre_ffn, post_ffn;
    std::unique_ptr<nn::Attention> attn;
    std::unique_ptr<nn::MultiLatentAttention> mla;
    std::unique_ptr<nn::Mlp> mlp;
    std::unique_ptr<nn::SparseMoe> moe;
  };
  struct Body : nn::Module {
    explicit Body(TransformerLM& owner);
  };

  TransformerSpec spec_;
  std::vector<std::unique_ptr<nn::RotaryEmbedding>> ropes_;
  Tensor position_embeddings(const Tensor& tokens, const nn::KVCacheList* caches) const;

  Communicator* comm_ = nullptr;

  std::unique_ptr<nn::Embedding> embed_, positions_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::unique_ptr<nn::Norm> norm_;
  std::unique_ptr<nn::Linear> lm_head_;
  std::unique_ptr<Body> body_;  // "model." prefix (body_name): embed_tokens, layers.N, norm
};

}  // namespace lmx::models
