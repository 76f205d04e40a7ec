// The argument structs of the backend seam (lmx/core/backend.h): what an op front end
// hands a device's kernels once it has validated its tensors. Plain pointers, sizes and
// element strides, no tensors, so backends (lmx/backend/*) include this header without
// linking the tensor engine. Pointers refer to memory of the device the kernel runs on.
// Arguments are trusted: the front ends in lmx/core/ops check shapes and dtypes first.
#pragma once

#include <cstdint>

#include "lmx/core/dtype.h"

namespace lmx {

// How a quantized matrix encodes its values (MLX's `mode`): affine = scale * q + bias
// with 2..8-bit integers q; the microscaling floating-point modes store each element as a
// small float with one power-of-two (mxfp4, mxfp8: e8m0) or e4m3 (nvfp4) scale per group
// and no biases. mxfp4: e2m1 elements, group 32; mxfp8: e4m3 elements, group 32;
// nvfp4: e2m1 elements, group 16.
enum class QuantMode : unsigned char { affine, mxfp4, mxfp8, nvfp4 };

}  // namespace lmx

namespace lmx::kernels {

// A dense weight matrix W [n, k], row-major, row stride `ld` elements (>= k).
// dtype is f32, f16 or bf16.
struct DenseWeightView {
  const void* data = nullptr;
  Dtype dtype = Dtype::f32;
  int64_t n = 0;
  int64_t k = 0;
  int64_t ld = 0;
};

// C[b][i, j] = alpha * sum_p A[b][i, p] * B[b][p, j] + beta * C[b][i, j]
// for b in [0, batch). Element (i, p) of A is a[b * a_bs + i * a_rs + p * a_cs]; B and C
// likewise. A transposed operand is just swapped strides. beta == 0 never reads C (so C
// may hold garbage or NaN).
struct GemmArgs {
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1.0f;
  float beta = 0.0f;
  const float* a = nullptr;
  int64_t a_rs = 0, a_cs = 1;
  const float* b = nullptr;
  int64_t b_rs = 0, b_cs = 1;
  float* c = nullptr;
  int64_t c_rs = 0, c_cs = 1;
  int64_t batch = 1;
  int64_t a_bs = 0, b_bs = 0, c_bs = 0;
};

// An MLX-quantized matrix as stored (see lmx/core/quantized_weight.h):
// w uint32 [n, k*bits/32], scales / biases [n, k/group] of scale_dtype. In the
// floating-point modes the scales are u8 codes (e8m0 or e4m3) and there are no biases.
struct QuantView {
  const uint32_t* w = nullptr;     // [n, k*bits/32]
  const void* scales = nullptr;    // [n, k/group]
  const void* biases = nullptr;    // [n, k/group]; null unless affine
  Dtype scale_dtype = Dtype::f32;  // of scales and biases: f32, f16 or bf16 (u8 unless affine)
  int64_t n = 0;
  int64_t k = 0;
  int bits = 4;
  int group_size = 64;
  int64_t w_stride = 0;  // row stride of w in uint32 words; 0 means k*bits/32
  int64_t s_stride = 0;  // row stride of scales/biases in elements; 0 means k/group
  QuantMode mode = QuantMode::affine;

  int64_t w_row_stride() const { return w_stride ? w_stride : k * bits / 32; }
  int64_t s_row_stride() const { return s_stride ? s_stride : k / group_size; }
};

// One product of a quantized vector-matrix product: y[0, w.k) = x[0, w.n) @ dequant(w), the
// transpose of a linear layer's use of its weight (x runs over the rows). Multi-head latent
// attention's absorbed queries: one per head.
struct QuantVecmat {
  const float* x = nullptr;
  QuantView w;
  float* y = nullptr;
};

// Precision of the activations inside the quantized matmul kernels. Shapes a reduced
// precision does not support run the f32 path.
enum class ActivationPrecision : uint8_t {
  // Exact f32 activations; matches the reference to f32 rounding (~1e-6).
  f32,
  // x rounded once per call to int16 with one scale per group (error <= amax/65534 per
  // element, ~1e-5 relative on a layer output) and integer dot products (vpmaddwd on the
  // CPU): fewer instructions per weight than f32. 4-bit (group >= 64) and 8-bit weights.
  int16,
  // x rounded to int8 per group (~1e-3 relative, like llama.cpp's Q8 activations): the
  // fewest instructions. 4-bit (group >= 64) and 8-bit weights.
  int8,
};

// Element-wise kernels over strided operands of any dtype (lmx/core's generic tensor
// loops on devices other than the CPU): copies with dtype conversion, unary / binary /
// compare / where with broadcasting, as the CPU loops of lmx/core/ops/elementwise.cpp
// and Tensor::copy_ compute them. The front end merges adjacent dims first
// (detail::make_layout), so kMaxRank covers every layout a model makes.
inline constexpr int kMaxRank = 8;

// One operand: `data` points at its element 0 (offset applied); strides in elements for
// each dim of the shared shape (0 broadcasts).
struct StridedOperand {
  void* data = nullptr;
  Dtype dtype = Dtype::f32;
  int64_t strides[kMaxRank] = {};
};

struct ElementwiseArgs {
  int rank = 0;  // 1..kMaxRank
  int64_t shape[kMaxRank] = {};
  int64_t numel = 0;
  StridedOperand out;
  // The inputs: copy and unary read in[0]; binary and compare in[0], in[1]; where reads
  // the condition in[0] and the values in[1], in[2].
  StridedOperand in[3];
};

// Element-wise functions. A floating output computes in f32 (inputs widened as
// load_as_float does) and rounds once to the output dtype; an integer output computes in
// int64 (neg, abs, square; add, sub, mul, maximum, minimum).
enum class UnaryKernel : uint8_t {
  neg, abs, square, exp, log, sqrt, rsqrt, tanh, sigmoid, silu, gelu, gelu_tanh, softplus, sin, cos, erf
};
enum class ArithmeticKernel : uint8_t { add, sub, mul, div, maximum, minimum, pow };
// Compares in double; the output is bool (u8 0 / 1).
enum class CompareKernel : uint8_t { eq, ne, lt, le, gt, ge };

// One Adam / AdamW step over n contiguous f32 values, each operation rounded to f32 in
// this order (so that it equals the same step composed of element-wise ops bit for bit):
//   m = m * beta1 + g * one_minus_beta1;   v = v * beta2 + (g * g) * one_minus_beta2
//   w_out = w * decay - ((m / m_divisor) / (sqrt(v / v_divisor) + eps)) * lr
// m and v are updated in place; w_out may equal w. divisor 1 (no bias correction) and
// decay 1 (no weight decay) leave the values as they are.
struct AdamStepArgs {
  const float* w = nullptr;
  const float* g = nullptr;
  float* m = nullptr;
  float* v = nullptr;
  float* w_out = nullptr;
  int64_t n = 0;
  float beta1 = 0, one_minus_beta1 = 0, beta2 = 0, one_minus_beta2 = 0;
  float m_divisor = 1, v_divisor = 1, decay = 1, eps = 0, lr = 0;
};

// The gradient of the mean-weighted cross-entropy with respect to the logits, one pass:
//   out[r, v] = (exp(logits[r, v] - lse[r]) - (v == targets[r])) * coef[r]
// for logits [rows, vocab] (contiguous), lse the rows' logsumexp, coef each row's weight x
// the upstream gradient. A target outside [0, vocab) matches no column (callers check them).
struct CrossEntropyGradArgs {
  const float* logits = nullptr;
  const float* lse = nullptr;
  const int64_t* targets = nullptr;
  const float* coef = nullptr;
  float* out = nullptr;
  int64_t rows = 0, vocab = 0;
};

struct AttentionArgs {
  int64_t batch = 1;
  // q_heads is a multiple of kv_heads (GQA): q head h reads kv head
  // h / (q_heads / kv_heads).
  int64_t q_heads = 1;
  int64_t kv_heads = 1;
  int64_t q_len = 1;
  int64_t kv_len = 0;
  int64_t head_dim = 0;    // of q and k
  int64_t v_head_dim = 0;  // of v and out
  // Element strides for [batch, head, seq, dim] of each operand.
  const float* q = nullptr;  // [batch, q_heads, q_len, head_dim]
  int64_t q_strides[4] = {0, 0, 0, 1};
  const void* k = nullptr;  // [batch, kv_heads, kv_len, head_dim], kv_dtype
  int64_t k_strides[4] = {0, 0, 0, 1};
  const void* v = nullptr;  // [batch, kv_heads, kv_len, v_head_dim], kv_dtype
  int64_t v_strides[4] = {0, 0, 0, 1};
  Dtype kv_dtype = Dtype::f32;  // f32, f16 or bf16 (both k and v)
  float* out = nullptr;         // [batch, q_heads, q_len, v_head_dim]
  int64_t out_strides[4] = {0, 0, 0, 1};
};

struct AttentionOptions {
  float scale = 1.0f;  // usually 1/sqrt(head_dim)
  // Causal: query i sits at absolute position q_offset + i; key j (absolute position
  // j) is visible iff j <= q_offset + i.
  bool causal = false;
  int64_t q_offset = 0;
  // Sliding window (0 = none): key j is visible iff (q_offset + i) - j < window.
  int64_t window = 0;
  // Optional additive mask (-inf allowed) [batch, q_heads, q_len, kv_len], element
  // strides; stride 0 broadcasts (an [q_len, kv_len] mask: {0, 0, ld, 1}).
  const float* mask = nullptr;
  int64_t mask_strides[4] = {0, 0, 0, 1};
  // Logit soft-capping (0 = off): s = cap * tanh(s / cap), applied to the scaled
  // scores before the mask (Gemma 2).
  float softcap = 0.0f;
  // Attention sinks [q_heads] (null = none): a learned logit per head that joins the
  // softmax denominator but has no value row (gpt-oss).
  const float* sinks = nullptr;
};

// One quantized operand [batch, kv_heads, kv_len, dim]: row (b, h, j) holds `dim`
// values as dim * bits / 32 uint32 words and dim / group f32 scales and biases.
struct QuantizedRows {
  const uint32_t* w = nullptr;
  const float* scales = nullptr;
  const float* biases = nullptr;
  int64_t w_strides[3] = {0, 0, 0};  // in words, for (batch, head, position)
  int64_t s_strides[3] = {0, 0, 0};  // in elements, for scales and biases alike
  int bits = 8;
};

struct QuantizedAttentionArgs {
  int64_t batch = 1;
  int64_t q_heads = 1;
  int64_t kv_heads = 1;
  int64_t q_len = 1;
  int64_t kv_len = 0;
  int64_t head_dim = 0;
  int64_t v_head_dim = 0;
  int group_size = 64;
  const float* q = nullptr;  // [batch, q_heads, q_len, head_dim]
  int64_t q_strides[4] = {0, 0, 0, 1};
  QuantizedRows k, v;
  float* out = nullptr;  // [batch, q_heads, q_len, v_head_dim]
  int64_t out_strides[4] = {0, 0, 0, 1};
};

// A per-channel parameter vector of `dim` contiguous elements (norm weight or bias) in
// f32, f16 or bf16, as stored in the checkpoint. A null `data` means "absent".
struct ChannelVector {
  const void* data = nullptr;
  Dtype dtype = Dtype::f32;
};

struct RmsNormOptions {
  ChannelVector weight;          // [dim]; absent: no per-channel scale
  bool add_unit_offset = false;  // scale by (1 + w), as Gemma stores its norm weights
  float eps = 1e-6f;
  // A residual add fused in front (a transformer layer's x + h, then the next norm): when
  // residual is set, sum[r, :] = x[r, :] + residual[r, :] (the f32 add of ops::add) is
  // written and normed in place of x. sum must be set with it; rows of ld_* floats.
  const float* residual = nullptr;
  int64_t ld_residual = 0;
  float* sum = nullptr;
  int64_t ld_sum = 0;
};

struct LayerNormOptions {
  ChannelVector weight;  // [dim]; absent: scale 1
  ChannelVector bias;    // [dim]; absent: shift 0
  float eps = 1e-5f;
};

struct RopeOptions {
  // Shape of x and out: [batch, heads, seq, head_dim].
  int64_t batch = 1;
  int64_t heads = 1;
  int64_t seq = 1;
  int64_t head_dim = 0;
  // Element strides of x and of out for each of the 4 dims (any layout, e.g. the
  // [batch, seq, heads, head_dim] output of a projection viewed as above).
  int64_t x_strides[4] = {0, 0, 0, 1};
  int64_t out_strides[4] = {0, 0, 0, 1};
  // Leading dims that rotate (even, <= head_dim); the rest are copied through.
  int64_t rotary_dim = 0;
  // true: pairs (2i, 2i+1) (GPT-J, MLX traditional=True). false: pairs (i, i + d/2)
  // with d = rotary_dim (HF rotate_half: Llama, Qwen, Mistral, ...).
  bool traditional = false;
  // [rotary_dim / 2] inverse frequencies of pair i; scaled RoPE variants (linear,
  // dynamic NTK, llama3, yarn, longrope) differ only in these values.
  const float* inv_freq = nullptr;
  // Position of token s in batch b: offset + batch_offsets[b] (if given) + s, or
  // positions[b * seq + s] when `positions` is given (left-padded batches, packed
  // sequences: any position per token).
  int64_t offset = 0;
  const int64_t* batch_offsets = nullptr;  // [batch] or null
  const int64_t* positions = nullptr;      // [batch, seq] contiguous, or null
  // Multiplies cos and sin (yarn / longrope attention factor); 1 for plain RoPE.
  float mscale = 1.0f;
};

enum class Activation {
  silu,       // x * sigmoid(x)
  gelu,       // x/2 * (1 + erf(x / sqrt 2))                    (exact, torch default)
  gelu_tanh,  // x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  ("gelu_pytorch_tanh")
  exp,
  tanh,
  sigmoid,
  softplus,  // log(1 + e^x), computed stably for all x (no threshold switch)
};

// What a one-row linear makes its x from inside its own first pass
// (Backend::linears_with_prologue), so that the op before it needs no launch of its own (a
// decode step's norms and gated activations): gated: x = act(x) * up; rms_norm: x = the
// norm RmsNormOptions describes of x (its residual add fused: x + residual, written to sum).
struct InputPrologue {
  enum class Kind : uint8_t { gated, rms_norm };
  Kind kind = Kind::gated;
  const float* x = nullptr;  // [k] contiguous f32: the gate, or the norm's input
  int64_t k = 0;
  const float* up = nullptr;  // gated: [k]
  Activation act = Activation::silu;
  RmsNormOptions norm;  // rms_norm (ld_residual, ld_sum unused: one row)
};

// Selective state-space scan (Mamba, Mamba2), one recurrence per (batch row, head) over
// a state S [head_dim, state_dim]; with g = h / (heads / groups):
//   S[p][n] = exp(dt[t][h] * a[h][n]) * S[p][n] + dt[t][h] * x[t][h][p] * b[t][g][n]
//   y[t][h][p] = sum_n S[p][n] * c[t][g][n] + d[h] * x[t][h][p]
// Mamba2 has one decay per head (a[h][n] equal over n); Mamba is heads = channels,
// head_dim = 1, groups = 1. Every array contiguous f32.
struct SsmScanArgs {
  int64_t batch = 0, seq = 0, heads = 0, head_dim = 0, state_dim = 0, groups = 1;
  const float* x = nullptr;   // [batch, seq, heads, head_dim]
  const float* dt = nullptr;  // [batch, seq, heads], already softplus'd
  const float* a = nullptr;   // [heads, state_dim], negative
  const float* b = nullptr;   // [batch, seq, groups, state_dim]
  const float* c = nullptr;   // [batch, seq, groups, state_dim]
  const float* d = nullptr;   // [heads] or null (no skip term)
  float* state = nullptr;     // [batch, heads, head_dim, state_dim], read and updated
  float* y = nullptr;         // [batch, seq, heads, head_dim]
};

// Gated delta rule (Qwen3-Next linear attention), one recurrence per (batch row, value
// head) over S [k_dim, v_dim]; key head = h / (v_heads / k_heads):
//   S *= exp(g[t][h]);  u = (v[t][h] - S^T k[t]) * beta[t][h];  S += k[t] u^T;  o[t][h] = S^T q[t]
// q and k as given (normalize and scale them before). Every array contiguous f32.
struct GatedDeltaArgs {
  int64_t batch = 0, seq = 0, k_heads = 0, v_heads = 0, k_dim = 0, v_dim = 0;
  const float* q = nullptr;     // [batch, seq, k_heads, k_dim]
  const float* k = nullptr;     // [batch, seq, k_heads, k_dim]
  const float* v = nullptr;     // [batch, seq, v_heads, v_dim]
  const float* g = nullptr;     // [batch, seq, v_heads] log decay (<= 0)
  const float* beta = nullptr;  // [batch, seq, v_heads]
  float* state = nullptr;       // [batch, v_heads, k_dim, v_dim], read and updated
  float* out = nullptr;         // [batch, seq, v_heads, v_dim]
};

}  // namespace lmx::kernels
