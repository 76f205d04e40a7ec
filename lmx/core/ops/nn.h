// Neural-network ops: softmax, norms, rotary embeddings, attention, fused MLP
// activations. Inputs of any float dtype; results are f32.
#pragma once

#include "lmx/core/tensor.h"

namespace lmx::ops {

Tensor softmax(const Tensor& x, int axis = -1);
Tensor log_softmax(const Tensor& x, int axis = -1);
// d(cross-entropy)/d(logits) in one pass: (softmax(logits) - onehot(targets)) * coef[:, None]
// from the rows' logsumexp lse (kernels::CrossEntropyGradArgs). logits f32 [N, V], lse and
// coef f32 [N], targets i64 [N], all on one device.
Tensor cross_entropy_grad(const Tensor& logits, const Tensor& lse, const Tensor& targets, const Tensor& coef);

// x * rsqrt(mean(x^2) + eps) * weight over the last axis; weight [dim] optional.
// add_unit_offset scales by (1 + weight) (Gemma's stored norm weights).
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps, bool add_unit_offset = false);
// rms_norm(x + residual) with the sum x + residual (ops::add's f32 values, bit for bit)
// in *sum: a transformer layer's residual add and the next norm in one pass where both
// are f32 of one shape (else the two ops).
Tensor add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, float eps, bool add_unit_offset,
                    Tensor* sum);
// (x - mean) / sqrt(var + eps) * weight + bias over the last axis; both optional.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps);

struct RopeParams {
  Tensor inv_freq;           // f32 [rotary_dim / 2]: scaled variants change only these
  int64_t rotary_dim = 0;    // 0: the whole head_dim
  bool traditional = false;  // interleaved pairs (2i, 2i+1) vs halves (HF rotate_half)
  int64_t offset = 0;        // position of the first token
  float mscale = 1.0f;       // multiplies cos / sin (yarn, longrope)
  Tensor batch_offsets;      // optional i64 [batch]: row b's tokens at offset + batch_offsets[b] + s
};
// x [batch, heads, seq, head_dim] (any strides) rotated at positions offset + s
// (+ batch_offsets[b] where given; a position may then be negative).
Tensor rope(const Tensor& x, const RopeParams& params);

struct AttentionParams {
  float scale = 0.0f;        // 0: 1 / sqrt(head_dim)
  bool causal = false;       // key j visible to query i iff j <= q_offset + i
  int64_t q_offset = 0;      // absolute position of the first query
  int64_t window = 0;        // sliding window (0 = none)
  Tensor mask;               // optional additive mask broadcastable to [B, Hq, Lq, Lkv]
  float softcap = 0.0f;      // logit soft-capping (0 = off)
  Tensor sinks;              // optional [q_heads] attention-sink logits
};
// q [B, Hq, Lq, D], k [B, Hkv, Lkv, D], v [B, Hkv, Lkv, Dv] -> [B, Hq, Lq, Dv] (f32).
// K/V may be f32, f16 or bf16 (the same dtype); Hq must be a multiple of Hkv.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionParams& params = {});

// Keys and values stored MLX-affine-quantized along head_dim (a quantized KV cache):
// u32 words [B, Hkv, L, D * bits / 32] and f32 scales / biases [B, Hkv, L, D / group].
struct QuantizedKV {
  Tensor k_w, k_scales, k_biases;
  Tensor v_w, v_scales, v_biases;
  int k_bits = 8;
  int v_bits = 8;
  int group_size = 64;
  int64_t length() const { return k_w.defined() ? k_w.dim(2) : 0; }
};
// scaled_dot_product_attention over a quantized K / V, dequantized block by block inside
// the kernel (exactly as dequantize does), never the whole cache at once. params.scale
// must be set (no head_dim default: the caller knows it).
Tensor quantized_scaled_dot_product_attention(const Tensor& q, const QuantizedKV& kv,
                                              const AttentionParams& params);

enum class GatedActivation { silu, gelu, gelu_tanh };
// act(gate) * up, element-wise (the gated MLP of Llama / Gemma).
Tensor gated_activation(GatedActivation act, const Tensor& gate, const Tensor& up);
// The same written into `gate` (f32, contiguous, not shared with anything the caller
// still needs): one activation buffer fewer. Returns gate.
Tensor& gated_activation_(GatedActivation act, Tensor& gate, const Tensor& up);

}  // namespace lmx::ops
