// AVX2 activation kernels. See vec_math_avx2.h for the rules of AVX2 files.
#include "lmx/backend/cpu/activations_avx2.h"

#include "lmx/backend/cpu/vec_math_avx2.h"

namespace lmx::cpu::detail {

namespace {

template <typename F>
inline int64_t map8(const float* x, float* out, int64_t n, F f) {
  const int64_t n8 = n & ~int64_t{7};
  for (int64_t i = 0; i < n8; i += 8) _mm256_storeu_ps(out + i, f(_mm256_loadu_ps(x + i)));
  return n8;
}

template <typename F>
inline int64_t map8_mul(const float* g, const float* u, float* out, int64_t n, F f) {
  const int64_t n8 = n & ~int64_t{7};
  for (int64_t i = 0; i < n8; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_mul_ps(f(_mm256_loadu_ps(g + i)), _mm256_loadu_ps(u + i)));
  }
  return n8;
}

}  // namespace

int64_t activation_avx2(Activation act, const float* x, float* out, int64_t n) {
  switch (act) {
    case Activation::silu:
      return map8(x, out, n, [](__m256 v) { return avx2::silu(v); });
    case Activation::gelu:
      return map8(x, out, n, [](__m256 v) { return avx2::gelu_erf(v); });
    case Activation::gelu_tanh:
      return map8(x, out, n, [](__m256 v) { return avx2::gelu_tanh(v); });
    case Activation::exp:
      return map8(x, out, n, [](__m256 v) { return avx2::exp(v); });
    case Activation::tanh:
      return map8(x, out, n, [](__m256 v) { return avx2::tanh(v); });
    case Activation::sigmoid:
      return map8(x, out, n, [](__m256 v) { return avx2::sigmoid(v); });
    case Activation::softplus:
      return map8(x, out, n, [](__m256 v) { return avx2::softplus(v); });
  }
  return 0;
}

int64_t activation_mul_avx2(Activation act, const float* g, const float* u, float* out, int64_t n) {
  switch (act) {
    case Activation::silu:
      return map8_mul(g, u, out, n, [](__m256 v) { return avx2::silu(v); });
    case Activation::gelu:
      return map8_mul(g, u, out, n, [](__m256 v) { return avx2::gelu_erf(v); });
    case Activation::gelu_tanh:
      return map8_mul(g, u, out, n, [](__m256 v) { return avx2::gelu_tanh(v); });
    case Activation::exp:
      return map8_mul(g, u, out, n, [](__m256 v) { return avx2::exp(v); });
    case Activation::tanh:
      return map8_mul(g, u, out, n, [](__m256 v) { return avx2::tanh(v); });
    case Activation::sigmoid:
      return map8_mul(g, u, out, n, [](__m256 v) { return avx2::sigmoid(v); });
    case Activation::softplus:
      return map8_mul(g, u, out, n, [](__m256 v) { return avx2::softplus(v); });
  }
  return 0;
}

}  // namespace lmx::cpu::detail
