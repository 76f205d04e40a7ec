#include "lmx/backend/cpu/activations.h"

#include <algorithm>
#include <cmath>

#include "lmx/backend/cpu/activations_avx2.h"
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

namespace {

// Runs `vec(first, count)` (an AVX2 kernel over [first, first + count) that returns how
// many it did, a multiple of 8) on chunks of whole 8-lane blocks, and `tail(first, count)`
// on the last partial block, which runs the same kernel on a zero-padded copy: an
// element's value never depends on where it lies in the array.
template <typename Vec, typename Tail>
void for_vector_blocks(int64_t n, ThreadPool& pool, Vec&& vec, Tail&& tail) {
  split((n + 7) / 8, pool, [&](int64_t b, int64_t e) {
    const int64_t first = b * 8, last = std::min(e * 8, n);
    const int64_t done = first + vec(first, last - first);
    if (done < last) tail(done, last - done);
  });
}

}  // namespace

void activation(Activation act, const float* x, float* out, int64_t n, ThreadPool& pool) {
#ifdef LMX_CPU_X86
  if (cpu_features().use_avx2()) {
    for_vector_blocks(
        n, pool, [&](int64_t i, int64_t count) { return detail::activation_avx2(act, x + i, out + i, count); },
        [&](int64_t i, int64_t count) {
          float lanes[8] = {};
          std::copy(x + i, x + i + count, lanes);
          detail::activation_avx2(act, lanes, lanes, 8);
          std::copy(lanes, lanes + count, out + i);
        });
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
    for_vector_blocks(
        n, pool,
        [&](int64_t i, int64_t count) { return detail::activation_mul_avx2(act, gate + i, up + i, out + i, count); },
        [&](int64_t i, int64_t count) {
          float g[8] = {}, u[8] = {};
          std::copy(gate + i, gate + i + count, g);
          std::copy(up + i, up + i + count, u);
          detail::activation_mul_avx2(act, g, u, g, 8);
          std::copy(g, g + count, out + i);
        });
    return;
  }
#endif
  split(n, pool, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = activation_scalar(act, gate[i]) * up[i];
  });
}

}  // namespace lmx::cpu
