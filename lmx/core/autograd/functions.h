// Differentiable functions over Vars: the ops the trainable transformers use, each with
// its backward beside its forward (basic_grad.cpp: arithmetic, reductions, shapes,
// matmuls, embedding; nn_grad.cpp: norms, RoPE, attention, gated activations, softmax,
// soft-capping, dropout, cross-entropy). The
// forwards call lmx::ops, so they run on every device the ops do; the backwards are
// composed of lmx::ops too. Outside a GradScope they only compute their values.
#pragma once

#include "lmx/core/autograd/variable.h"
#include "lmx/core/ops/nn.h"
#include "lmx/core/quantized_weight.h"

namespace lmx::ops {
class RandomGenerator;
}

namespace lmx::autograd {

// Element-wise with NumPy broadcasting (f32 results).
Var add(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
Var mul(const Var& a, double s);
Var div(const Var& a, const Var& b);
// Sum of all elements (a scalar).
Var sum_all(const Var& a);
// Sum over one axis (negative counts from the end), kept as size 1 when keepdim.
Var sum(const Var& a, int axis, bool keepdim = true);

Var reshape(const Var& a, const Shape& shape);
Var transpose(const Var& a, int d0, int d1);

// a [..., m, k] @ b [..., k, n], batch dims broadcast (as ops::matmul).
Var matmul(const Var& a, const Var& b);
// x [..., in] @ weight [out, in]^T + bias [out] (bias may be undefined); a dense weight of
// any float dtype (its gradient is f32).
Var linear(const Var& x, const Var& weight, const Var& bias = Var());
// The same with a frozen MLX-quantized weight, differentiable in x (QLoRA); the bias, if
// any, is frozen too.
Var quantized_linear(const Var& x, const QuantizedWeight& weight, const Tensor& bias = Tensor());
// Rows of table [vocab, dim] picked by integer ids [...] -> [..., dim].
Var embedding(const Var& table, const Tensor& ids);

// As ops::rms_norm over the last axis; weight [dim] (undefined: no scale).
Var rms_norm(const Var& x, const Var& weight, float eps, bool add_unit_offset = false);
// As ops::rope on x [batch, heads, seq, head_dim].
Var rope(const Var& x, const ops::RopeParams& params);
// As ops::scaled_dot_product_attention: q [B, Hq, L, D], k / v [B, Hkv, S, D] ->
// [B, Hq, L, D]; GQA when Hq is a multiple of Hkv; p's scale (0: 1 / sqrt(D)), causal
// (query i sees keys j <= i), sliding window (and i - j < window) and logit soft-capping.
// Additive masks, sinks and query offsets throw Unsupported.
Var scaled_dot_product_attention(const Var& q, const Var& k, const Var& v, const ops::AttentionParams& p);
// act(gate) * up (SwiGLU, GeGLU with exact or tanh GELU).
Var gated_activation(ops::GatedActivation act, const Var& gate, const Var& up);
// Softmax over the last axis.
Var softmax(const Var& x);
// cap * tanh(x / cap) (Gemma 2's logit soft-capping); cap > 0.
Var softcap(const Var& x, float cap);
// Inverted dropout: each element zeroed with probability p, the rest scaled by 1/(1-p).
// p == 0 returns x.
Var dropout(const Var& x, float p, ops::RandomGenerator& rng);
// Mean over the weighted positions of -log softmax(logits)[target]: logits [N, V],
// targets [N] (integers; any valid id where the weight is 0), weights [N] (f32, 0 masks
// a position out). Throws InvalidArgument when no position has weight.
Var cross_entropy(const Var& logits, const Tensor& targets, const Tensor& weights);

}  // namespace lmx::autograd
