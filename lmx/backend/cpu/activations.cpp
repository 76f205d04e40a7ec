#include "lmx/backend/cpu/activations.h"

#include <algorithm>
#include <cmath>

#include "lmx/backend/cpu/activations_avx2.h"
#include "lmx/backend/cpu/activations_avx512.h"
#include "lmx/backend/cpu/cpu_features.h"

namespace lmx::cpu {

namespace {

// Elements per parallel chunk: below this a region's hand-off costs more than it saves.
constexpr int64_t kGrain = 16384;

template <typename Fn>
void split(int64_t n, ThreadPool& pool, Fn&& fn) {
  if (n <= kGrain) {
    fn(int64_t{0}, n);
    return;
  }
  pool.parallel_for(n, kGrain, fn);
}

}  // namespace

float activation_scalar(Activation act, float x) {
  switch (act) {
    case Activation::silu:
      return x / (1.0f + std::exp(-x));
    case Activation::gelu:
      return 0.5f * x * std::erfc(-x * 0.707106781186547524f);
    case Activation::gelu_tanh: {
      // x/2 (1 + tanh u) = x sigmoid(2u): the same value without the cancellation of
      // 1 + tanh(u) for negative x (torch's formula gives 0 there, we give the tail).
      const float u = 0.797884560802865356f * (x + 0.044715f * x * x * x);
      return x / (1.0f + std::exp(-2.0f * u));
    }
    case Activation::exp:
      return std::exp(x);
    case Activation::tanh:
      return std::tanh(x);
    case Activation::sigmoid:
      return 1.0f / (1.0f + std::exp(-x));
    case Activation::softplus:
      return std::fmax(x, 0.0f) + std::log1p(std::exp(-std::fabs(x)));
  }
  return x;
}

#ifdef LMX_CPU_X86
namespace {
// The vector kernels of this CPU's tier (after use_avx2()): AVX-512 or AVX2.
const detail::ActivationKernels kActivationsAvx512 = {detail::activation_avx512,
                                                      detail::activation_mul_avx512};
const detail::ActivationKernels& vector_kernels() {
  return cpu_features().use_avx512() ? kActivationsAvx512 : detail::kActivationsAvx2;
}
}  // namespace
#endif

void activation(Activation act, const float* x, float* out, int64_t n, ThreadPool& pool) {
#ifdef LMX_CPU_X86
  if (cpu_features().use_avx2()) {
    const auto fn = vector_kernels().act;
    split(n, pool, [&](int64_t b, int64_t e) { fn(act, x + b, nullptr, out + b, e - b); });
    return;
  }
#endif
  split(n, pool, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = activation_scalar(act, x[i]);
  });
}

void activation_mul(
    Activation act, const float* gate, const float* up, float* out, int64_t n, ThreadPool& pool) {
#ifdef LMX_CPU_X86
  if (cpu_features().use_avx2()) {
    const auto fn = vector_kernels().act_mul;
    split(n, pool, [&](int64_t b, int64_t e) { fn(act, gate + b, up + b, out + b, e - b); });
    return;
  }
#endif
  split(n, pool, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = activation_scalar(act, gate[i]) * up[i];
  });
}

}  // namespace lmx::cpu
