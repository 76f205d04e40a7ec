// Element-wise activation kernels over contiguous f32 arrays, and the fused
// gate * up products of gated MLPs (SwiGLU, GeGLU). lmx/core's element-wise ops call
// these for contiguous f32 data.
#pragma once

#include <cstdint>

#include "lmx/base/thread_pool.h"
#include "lmx/core/kernel_args.h"

namespace lmx::cpu {

using kernels::Activation;

// out[i] = act(x[i]) for i < n. out may equal x. Large arrays are split over `pool`. Every
// element goes through the same code wherever it lies (no scalar tail on the vector path),
// so equal inputs give equal bits in arrays of any length.
void activation(Activation act, const float* x, float* out, int64_t n, ThreadPool& pool);

// out[i] = act(gate[i]) * up[i]: the gated-MLP product. out may equal gate or up.
void activation_mul(
    Activation act, const float* gate, const float* up, float* out, int64_t n, ThreadPool& pool);

// The two hot cases by name.
inline void silu_mul(const float* gate, const float* up, float* out, int64_t n, ThreadPool& pool) {
  activation_mul(Activation::silu, gate, up, out, n, pool);
}
inline void gelu_mul(const float* gate,
                     const float* up,
                     float* out,
                     int64_t n,
                     bool tanh_approximation,
                     ThreadPool& pool) {
  activation_mul(tanh_approximation ? Activation::gelu_tanh : Activation::gelu, gate, up, out, n,
                 pool);
}

// Scalar value of one activation (the reference the vector kernels are tested against
// and the tail/fallback path).
float activation_scalar(Activation act, float x);

}  // namespace lmx::cpu
