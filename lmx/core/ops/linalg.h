// Matrix products. Activations compute in f32 (inputs of other float dtypes are
// converted); weights stay in their stored dtype (f32 / f16 / bf16 / MLX quantized).
#pragma once

#include <span>
#include <vector>

#include "lmx/core/quantized_weight.h"
#include "lmx/core/tensor.h"

namespace lmx::ops {

// Batched matrix product: a [..., m, k] @ b [..., k, n] -> [..., m, n] (f32), batch
// dims broadcast; 1-D operands are treated as a row (a) or a column (b) vector.
Tensor matmul(const Tensor& a, const Tensor& b);

// x [..., in] @ weight [out, in]^T (+ bias [out]) -> [..., out] (f32). The weight may be
// f32, f16 or bf16 and is read as stored.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// x [..., in] @ dequant(weight)^T (+ bias) -> [..., out] (f32), never materializing the
// full-precision weight. Uses the backend's layout when weight.prepared is set.
Tensor quantized_linear(const Tensor& x, const QuantizedWeight& weight, const Tensor& bias = Tensor());

// x [..., H, L, n] @ W [H, n, k] -> [..., H, L, k] (f32) with W given as the quantized
// [H * n, k] matrix of its heads' blocks of rows (MLX tensors held, not prepared): the
// transposed use of a quantized weight, x running over its rows. Equals
// matmul(x, w.dequantize().reshape({H, n, k})) up to f32 rounding, without the f32 matrix
// (multi-head latent attention's absorbed queries, x @ W_uk per head).
Tensor quantized_bmm(const Tensor& x, const QuantizedWeight& w, int64_t heads);

// linear(x, *weights[i], biases[i]) for each i (biases may be undefined), bit for bit, for
// dense weights that read the same x: the backend may cover them in one launch.
std::vector<Tensor> linears(const Tensor& x, std::span<const Tensor* const> weights, std::span<const Tensor> biases);

// quantized_linear(x, *weights[i], biases[i]) for each i (biases may be undefined), bit
// for bit, for weights that read the same x. With a few rows (decode, < 4) and packed
// weights of one input layout, x is prepared once and all the weights' rows share one
// parallel region: decode's q/k/v and gate/up pay one hand-off instead of three and two.
std::vector<Tensor> quantized_linears(const Tensor& x,
                                      std::span<const QuantizedWeight* const> weights,
                                      std::span<const Tensor> biases);

// quantized_linear(*xs[i], *weights[i], biases[i]) for each i, bit for bit, each weight
// over its own input. With one row each (a decode token's chosen experts) and prepared
// weights on x's device, the backend may cover them in one launch (the CPU: one parallel
// region instead of one per weight); inputs given as the same tensor are prepared once.
std::vector<Tensor> quantized_linears_each(std::span<const Tensor* const> xs,
                                           std::span<const QuantizedWeight* const> weights,
                                           std::span<const Tensor> biases);

// Precision of the activations inside quantized matmuls: f32 (exact), int16 (the default:
// x rounded per group, ~1e-5 relative per layer) or int8 (~1e-3, like llama.cpp's Q8
// activations; every CPU kernel on AVX-512, while the AVX2 tier's prefill GEMM rounds to
// int16 for it; `lmx serve`'s default). Set from LMX_QUANT_ACTIVATIONS=f32|int16|int8 at
// start-up, or here.
enum class QuantActivations { f32, int16, int8 };
void set_quant_activations(QuantActivations precision);
QuantActivations quant_activations();

}  // namespace lmx::ops
