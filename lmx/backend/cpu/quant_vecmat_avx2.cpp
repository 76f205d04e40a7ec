// y = x @ dequant(W) for 4- and 8-bit affine weights in the MLX layout (AVX2 + FMA; see
// vec_math_avx2.h for the rules of AVX2 files). The columns go in blocks of 32, each
// inside one group, its accumulators in registers over all rows:
// acc += (x[r] * scale[r, g]) * q[r, cols]; then y = acc + sum_r x[r] * bias[r, g].
// 4-bit: byte t of a block holds columns 2t (low nibble) and 2t + 1 (high nibble), so the
// low and high nibbles accumulate apart and interleave once at the end.
#include <immintrin.h>

#include "lmx/backend/cpu/matmul_kernels.h"

namespace lmx::cpu::detail {
namespace {

constexpr int64_t kBlock = 32;  // columns per block

// Bytes p[0..8) widened to 8 int32 lanes.
inline __m256i widen8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

template <int Bits>
void vecmat_block(const QuantView& w, const float* x, int64_t col0, float* y) {
  const int64_t row_bytes = w.w_row_stride() * 4, ss = w.s_row_stride(), g = col0 / w.group_size;
  const uint8_t* q = reinterpret_cast<const uint8_t*>(w.w) + col0 * Bits / 8;
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  float bias_sum = 0.0f;
  for (int64_t r = 0; r < w.n; ++r, q += row_bytes) {
    const float xr = x[r];
    const __m256 c = _mm256_set1_ps(xr * load_scalar(w.scales, w.scale_dtype, r * ss + g));
    bias_sum += xr * load_scalar(w.biases, w.scale_dtype, r * ss + g);
    if constexpr (Bits == 4) {
      const __m256i mask = _mm256_set1_epi32(0xF);
      for (int h = 0; h < 2; ++h) {
        const __m256i v = widen8(q + 8 * h);  // columns 16h + 2i (low) and 16h + 2i + 1 (high)
        acc[2 * h] = _mm256_fmadd_ps(c, _mm256_cvtepi32_ps(_mm256_and_si256(v, mask)), acc[2 * h]);
        acc[2 * h + 1] = _mm256_fmadd_ps(c, _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4)), acc[2 * h + 1]);
      }
    } else {
      for (int h = 0; h < 4; ++h) acc[h] = _mm256_fmadd_ps(c, _mm256_cvtepi32_ps(widen8(q + 8 * h)), acc[h]);
    }
  }
  alignas(32) float a[4][8];
  for (int h = 0; h < 4; ++h) _mm256_store_ps(a[h], acc[h]);
  for (int h = 0; h < 4; ++h) {
    for (int i = 0; i < 8; ++i) {
      const int64_t col = Bits == 4 ? 16 * (h / 2) + 2 * i + (h % 2) : 8 * h + i;
      y[col0 + col] = a[h][i] + bias_sum;
    }
  }
}

}  // namespace

bool quantized_vecmat_avx2(const QuantVecmat& p) {
  const QuantView& w = p.w;
  if (w.mode != QuantMode::affine || (w.bits != 4 && w.bits != 8) || w.group_size % kBlock != 0) return false;
  for (int64_t col0 = 0; col0 < w.k; col0 += kBlock) {
    if (w.bits == 4) {
      vecmat_block<4>(w, p.x, col0, p.y);
    } else {
      vecmat_block<8>(w, p.x, col0, p.y);
    }
  }
  return true;
}

}  // namespace lmx::cpu::detail
