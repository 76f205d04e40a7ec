// The matvec of the floating-point quantization modes (AVX2 + FMA + F16C): codes decoded
// in registers, 8 elements per step. e2m1: the magnitude from an 8-entry table by
// vpermps (which reads the low 3 bits of each code), the sign bit moved into place.
// e4m3: its bits are those of an f16 with the exponent bias 15 instead of 7 (vcvtph2ps,
// then x 256 once per group).
#include <immintrin.h>

#include <array>

#include "lmx/backend/cpu/quant_fp.h"

namespace lmx::cpu::detail {
namespace {

// The value of every u8 scale code of a mode, looked up once per group.
struct ScaleTable {
  explicit ScaleTable(QuantMode mode) {
    for (int c = 0; c < 256; ++c) value[c] = fp_scale_value(mode, static_cast<uint8_t>(c));
  }
  std::array<float, 256> value;
};

const ScaleTable& scale_table(QuantMode mode) {
  static const ScaleTable e8m0(QuantMode::mxfp4), e4m3(QuantMode::nvfp4);
  return mode == QuantMode::nvfp4 ? e4m3 : e8m0;
}

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Eight e2m1 codes (one word, lowest nibble first) as f32.
inline __m256 decode_fp4(uint32_t word) {
  const __m256 magnitudes = _mm256_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f);
  const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  const __m256i codes = _mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(word)), shifts);
  const __m256 v = _mm256_permutevar8x32_ps(magnitudes, codes);
  const __m256i sign = _mm256_and_si256(_mm256_slli_epi32(codes, 28), _mm256_set1_epi32(INT32_MIN));
  return _mm256_castsi256_ps(_mm256_xor_si256(_mm256_castps_si256(v), sign));
}

// Eight e4m3 codes as f32, divided by 256 (the f16 reading of the same bits).
inline __m256 decode_fp8_over_256(const uint8_t* p) {
  const __m128i h = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  const __m128i magnitude = _mm_slli_epi16(_mm_and_si128(h, _mm_set1_epi16(0x7f)), 7);
  const __m128i sign = _mm_slli_epi16(_mm_and_si128(h, _mm_set1_epi16(0x80)), 8);
  return _mm256_cvtph_ps(_mm_or_si128(magnitude, sign));
}

}  // namespace

void quantized_matvec_fp_avx2(
    const float* x, int64_t ldx, const QuantView& w, float* y, int64_t ldy, int64_t m, int64_t r0, int64_t r1) {
  const int64_t ws = w.w_row_stride(), ss = w.s_row_stride();
  const int64_t groups = w.k / w.group_size, steps = w.group_size / 8;
  const float* scale_of = scale_table(w.mode).value.data();
  const auto* scales = static_cast<const uint8_t*>(w.scales);
  const __m256 k256 = _mm256_set1_ps(256.0f);
  for (int64_t r = r0; r < r1; ++r) {
    const uint32_t* row = w.w + r * ws;
    const uint8_t* srow = scales + r * ss;
    for (int64_t i = 0; i < m; ++i) {
      const float* xr = x + i * ldx;
      __m256 acc = _mm256_setzero_ps();
      if (w.bits == 4) {
        for (int64_t g = 0; g < groups; ++g) {
          __m256 group_acc = _mm256_setzero_ps();
          for (int64_t t = 0; t < steps; ++t) {
            const int64_t e = g * w.group_size + t * 8;
            group_acc = _mm256_fmadd_ps(_mm256_loadu_ps(xr + e), decode_fp4(row[e >> 3]), group_acc);
          }
          acc = _mm256_fmadd_ps(_mm256_set1_ps(scale_of[srow[g]]), group_acc, acc);
        }
      } else {
        const auto* bytes = reinterpret_cast<const uint8_t*>(row);
        for (int64_t g = 0; g < groups; ++g) {
          __m256 group_acc = _mm256_setzero_ps();
          for (int64_t t = 0; t < steps; ++t) {
            const int64_t e = g * w.group_size + t * 8;
            group_acc = _mm256_fmadd_ps(_mm256_loadu_ps(xr + e), decode_fp8_over_256(bytes + e), group_acc);
          }
          acc = _mm256_fmadd_ps(_mm256_set1_ps(scale_of[srow[g]]), _mm256_mul_ps(group_acc, k256), acc);
        }
      }
      y[i * ldy + r] = hsum(acc);
    }
  }
}

}  // namespace lmx::cpu::detail
