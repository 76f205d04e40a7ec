// Multi-head attention with grouped KV heads and the per-architecture switches
// (biases, fused qkv, q/k norms, RoPE or none, sliding window, soft-capping).
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "lmx/nn/kv_cache.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/norm.h"
#include "lmx/nn/rope.h"

namespace lmx::nn {

// q/k norms: RMSNorm over head_dim (per_head) or the whole projection (full); LayerNorm
// with bias over head_dim shared by the heads (per_head_layer: Phi); LayerNorm with a
// scale per head and no bias (head_wise_layer: StableLM, Cohere); RMSNorm over head_dim
// without a learned scale (weightless: NanoChat).
enum class QkNorm { none, per_head, full, per_head_layer, head_wise_layer, weightless };

struct AttentionOptions {
  int64_t hidden = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  bool qkv_bias = false;        // biases on q/k/v projections
  bool o_bias = false;          // bias on the output projection
  bool fused_qkv = false;       // one "qkv_proj" (Phi-3)
  // Layout of the fused projection: [q | k | v] (Phi-3, GPT-BigCode multi-query) or,
  // per head, [q_h k_h v_h] for each head h (GPT-NeoX; needs kv_heads == heads).
  bool qkv_per_head = false;
  QkNorm qk_norm = QkNorm::none;
  bool qk_norm_unit_offset = false;  // Gemma-3 norms scale by (1 + w)
  bool qk_norm_split = false;        // head_wise_layer stored as "norms.<h>.weight" (StableLM)
  bool qk_norm_after_rope = false;   // Hunyuan, NanoChat normalize the rotated q / k
  bool sub_norm = false;             // BitNet: RMSNorm "attn_sub_norm" before the output projection
  // Checkpoint names that families spell differently (GPT-2 c_attn / c_proj, GPT-NeoX
  // query_key_value / dense, Hunyuan query_layernorm / key_layernorm).
  std::string qkv_name = "qkv_proj";
  std::string o_name = "o_proj";
  std::string q_norm_name = "q_norm";
  std::string k_norm_name = "k_norm";
  float norm_eps = 1e-6f;
  const RotaryEmbedding* rope = nullptr;  // null: no positional rotation (NoPE layer)
  float scale = 0.0f;           // 0: 1 / sqrt(head_dim)
  float softcap = 0.0f;         // attention logit soft-capping (0 = off)
  int64_t window = 0;           // sliding window (0 = full attention)
  // false: bidirectional (encoders and vision towers, run without a cache): every query sees
  // every key of its sequence, within |i - j| < window when there is a window.
  bool causal = true;
  bool sinks = false;           // learned per-head sink logits "sinks" [heads] (gpt-oss)
  float clip_qkv = 0.0f;        // clamp q, k, v to [-clip, clip] after projection and a full q/k norm (0 = off)
  // Llama 4: weightless RMS ("L2") norm of q and k after RoPE; chunked attention (a query
  // sees the keys of its own chunk of `chunk` positions only, 0 = off); on NoPE layers
  // queries at position p scaled by 1 + temperature_scale * log1p(floor((p + 1) / temperature_floor)).
  bool qk_l2_norm = false;
  int64_t chunk = 0;
  float temperature_scale = 0.0f;  // 0 = off
  float temperature_floor = 1.0f;
  // Qwen3-Next: q_proj also yields a per-head output gate ([q_h, gate_h] for each head);
  // the attention output is multiplied by sigmoid(gate) before o_proj.
  bool output_gate = false;
  // Gemma 3n: v normed over head_dim by an RMS norm without a learned scale (v_norm);
  // kv_shared: no k / v projections of its own: the layer attends over the keys and values
  // an earlier layer of the same kind handed over (SharedKV), with that layer's mask.
  bool v_norm = false;
  bool kv_shared = false;
  // Gemma 4's full-attention layers with attention_k_eq_v: no v_proj; the values are the
  // keys' projection before the key norm and rotation (then v_norm).
  bool values_from_keys = false;
};

// The keys and values one layer attended over in this call, handed to the later layers
// that reuse them (Gemma 3n's KV sharing), with the mask settings and positions it used.
struct SharedKV {
  Tensor k, v;                         // [B, kv_heads, S, D] (dense caches)
  std::optional<ops::QuantizedKV> quantized;  // a quantized cache's keys and values
  ops::AttentionParams params;         // causal / q_offset / window / mask as used
  int64_t offset = 0;                  // position of this call's first token
  std::vector<int64_t> left_padding;   // of the producer's cache (empty: none)
};

// What one call brings beyond x and the cache, for models that place tokens themselves.
struct AttentionContext {
  // The rotation of this call's tokens (M-RoPE, 2D vision RoPE): cos / sin [L, R] or
  // [B, 1, L, R] (see apply_rotary), used instead of the layer's rope at cache positions.
  Tensor cos, sin;
  // Block of each token of this call (-1: none). Causal attention: a token also sees the
  // later tokens of its own block (Gemma 3's images); non-causal: a token sees only its
  // own block (a batch of images as one sequence). Needs the call to hold every key
  // (no cache, or a fresh one).
  std::vector<int64_t> blocks;
};

// x [B, H, L, D] rotated at the positions of the tokens a cache is about to receive (its
// offset, less each row's left padding); no cache: positions 0 ...
Tensor rope_at_cache_positions(const RotaryEmbedding& rope, const Tensor& x, const KVCache* cache);
// x [B, H, L, D] rotated at positions offset ... of each row, less its left padding (empty: none).
Tensor rope_at(const RotaryEmbedding& rope, const Tensor& x, int64_t offset, const std::vector<int64_t>& pad);
// The mask (or causal offset) in p for the keys the cache returned by its last update, for
// q_len queries that start at absolute position offset_before; the mask moves to `device`.
// The caches build masks on the host.
void set_mask(ops::AttentionParams& p, const KVCache& cache, int64_t q_len, int64_t offset_before, Device device);

class Attention : public Module {
 public:
  explicit Attention(const AttentionOptions& o);
  // x [batch, seq, hidden] -> [batch, seq, hidden]; cache may be null (a fresh causal
  // pass over the whole sequence); ctx may be null. shared: filled with the keys and
  // values attended over (a layer whose later layers reuse them), or, for a kv_shared
  // layer, what it attends over (then cache is unused). x may be a norm not yet run
  // (ops::LinearInput): a decode row's runs inside the q / k / v projections where it can.
  Tensor forward(const ops::LinearInput& x, KVCache* cache, const AttentionContext* ctx = nullptr,
                 SharedKV* shared = nullptr) const;
  const AttentionOptions& options() const { return o_; }

 private:
  // q / k [B, H, L, D] through their norms (per-head kinds).
  Tensor norm_heads(const Tensor& x, bool query) const;
  // A kv_shared layer: queries of x over the keys and values of `shared`.
  Tensor forward_shared(const Tensor& x, const SharedKV& shared) const;

  AttentionOptions o_;
  std::unique_ptr<Linear> q_proj_, k_proj_, v_proj_, qkv_proj_, o_proj_;
  std::unique_ptr<Norm> q_norm_, k_norm_;
  std::unique_ptr<PerHeadLayerNorm> q_head_norm_, k_head_norm_;
  std::unique_ptr<RMSNorm> sub_norm_;
  Tensor sinks_;  // [heads]
};

}  // namespace lmx::nn
