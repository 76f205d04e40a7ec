// Element-wise activation kernels over contiguous f32 arrays, and the fused
// gate * up products of gated MLPs (SwiGLU, GeGLU). lmx/core's element-wise ops call
// these for contiguous f32 data.
#pragma once

#include <cstdint>

#include "lmx/backend/cpu/thread_pool.h"

namespace lmx::cpu {

enum class Activation {
  silu,       // x * sigmoid(x)
  gelu,       // x/2 * (1 + erf(x / sqrt 2))                    (exact, torch default)
  gelu_tanh,  // x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  ("gelu_pytorch_tanh")
  exp,
  tanh,
  sigmoid,
  softplus,  // log(1 + e^x), computed stably for all x (no threshold switch)
};

// out[i] = act(x[i]) for i < n. out may equal x. Large arrays are split over `pool`.
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
