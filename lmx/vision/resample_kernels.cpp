#include "lmx/vision/resample_kernels.h"

#include <algorithm>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LMX_VISION_AVX2 1
#include <immintrin.h>
#endif

namespace lmx::vision::detail {
namespace {

uint8_t clip8(int32_t acc, int bits) {
  int32_t v = acc >> bits;  // arithmetic shift, as Pillow's table lookup
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

int32_t half_of(int bits) { return bits > 0 ? 1 << (bits - 1) : 0; }

void horizontal_scalar(const uint8_t* src, uint8_t* dst, int x_begin, int x_end, const Coefficients& c) {
  const int32_t half = half_of(c.bits);
  for (int xx = x_begin; xx < x_end; ++xx) {
    const int32_t* k = c.weights.data() + static_cast<size_t>(xx) * c.ksize;
    const uint8_t* s = src + 3 * static_cast<size_t>(c.first[xx]);
    int32_t acc[3] = {half, half, half};
    for (int x = 0; x < c.count[xx]; ++x) {
      acc[0] += s[3 * x] * k[x];
      acc[1] += s[3 * x + 1] * k[x];
      acc[2] += s[3 * x + 2] * k[x];
    }
    for (int ch = 0; ch < 3; ++ch) dst[3 * xx + ch] = clip8(acc[ch], c.bits);
  }
}

// Bytes [0, n) of output row yy; `base` is the row of c.first[yy].
void vertical_scalar(const uint8_t* base, size_t stride, const Coefficients& c, int yy, size_t n, uint8_t* dst) {
  const int32_t* k = c.weights.data() + static_cast<size_t>(yy) * c.ksize;
  constexpr size_t kChunk = 512;
  int32_t acc[kChunk];
  for (size_t i0 = 0; i0 < n; i0 += kChunk) {
    const size_t m = std::min(kChunk, n - i0);
    std::fill(acc, acc + m, half_of(c.bits));
    for (int y = 0; y < c.count[yy]; ++y) {
      const uint8_t* src = base + static_cast<size_t>(y) * stride + i0;
      for (size_t i = 0; i < m; ++i) acc[i] += src[i] * k[y];
    }
    for (size_t i = 0; i < m; ++i) dst[i0 + i] = clip8(acc[i], c.bits);
  }
}

// The split of a weight: k = hi * 2^15 + lo.
int16_t weight_lo(int32_t k) { return static_cast<int16_t>(k & 0x7FFF); }
int16_t weight_hi(int32_t k) { return static_cast<int16_t>(k >> 15); }

#ifdef LMX_VISION_AVX2

#define LMX_AVX2 __attribute__((target("avx2")))

LMX_AVX2 __m256i combine(__m256i lo, __m256i hi, int bits) {
  const __m256i sum = _mm256_add_epi32(_mm256_add_epi32(_mm256_slli_epi32(hi, 15), lo), _mm256_set1_epi32(half_of(bits)));
  return _mm256_sra_epi32(sum, _mm_cvtsi32_si128(bits));
}

// Two output pixels at a time, one a 128-bit lane: a 16-byte load at each pixel's taps
// (five pixels), shuffled into 16-bit pairs (R0 R1 G0 G1 B0 B1 0 0), (R2 R3 ...) and
// (R4 0 G4 0 B4 0 0 0).
LMX_AVX2 void horizontal_avx2(const uint8_t* src, uint8_t* dst, const Coefficients& c, const HorizontalPlan& p) {
  const __m256i shuf[3] = {
      _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1,  //
                       0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1),
      _mm256_setr_epi8(6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1,  //
                       6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1),
      _mm256_setr_epi8(12, -1, -1, -1, 13, -1, -1, -1, 14, -1, -1, -1, -1, -1, -1, -1,  //
                       12, -1, -1, -1, 13, -1, -1, -1, 14, -1, -1, -1, -1, -1, -1, -1)};
  const auto* w = reinterpret_cast<const __m256i*>(p.weights.data());
  for (int xx = 0; xx < p.vector_end; xx += 2) {
    const uint8_t* s0 = src + 3 * static_cast<size_t>(c.first[xx]);
    const uint8_t* s1 = src + 3 * static_cast<size_t>(c.first[xx + 1]);
    __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
    for (int g = 0; g < p.groups; ++g, w += 6) {
      const __m256i px = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(s1 + 15 * g),
                                             reinterpret_cast<const __m128i*>(s0 + 15 * g));
      for (int j = 0; j < 3; ++j) {
        const __m256i pairs = _mm256_shuffle_epi8(px, shuf[j]);
        lo = _mm256_add_epi32(lo, _mm256_madd_epi16(pairs, _mm256_loadu_si256(w + j)));
        hi = _mm256_add_epi32(hi, _mm256_madd_epi16(pairs, _mm256_loadu_si256(w + 3 + j)));
      }
    }
    const __m256i v = combine(lo, hi, c.bits);
    const __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(v, v), v);  // lane: R G B 0 ...
    // Four bytes each (the fourth is overwritten by the next pixel; the last pixel of a
    // row is never in the vectorized range).
    const int32_t p0 = _mm256_extract_epi32(bytes, 0), p1 = _mm256_extract_epi32(bytes, 4);
    __builtin_memcpy(dst + 3 * static_cast<size_t>(xx), &p0, 4);
    __builtin_memcpy(dst + 3 * static_cast<size_t>(xx) + 3, &p1, 4);
  }
}

// 32 bytes at a time: rows taken in pairs, their bytes interleaved into 16-bit pairs.
LMX_AVX2 void vertical_avx2(const uint8_t* base, size_t stride, const Coefficients& c, int yy, size_t n, uint8_t* dst) {
  const int32_t* k = c.weights.data() + static_cast<size_t>(yy) * c.ksize;
  const int count = c.count[yy], pairs = (count + 1) / 2;
  int32_t lo_pair[64], hi_pair[64];
  if (pairs > 64) return vertical_scalar(base, stride, c, yy, n, dst);
  for (int q = 0; q < pairs; ++q) {
    const int32_t k1 = 2 * q + 1 < count ? k[2 * q + 1] : 0;
    lo_pair[q] = static_cast<uint16_t>(weight_lo(k[2 * q])) | static_cast<int32_t>(static_cast<uint32_t>(weight_lo(k1)) << 16);
    hi_pair[q] = static_cast<uint16_t>(weight_hi(k[2 * q])) | static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(weight_hi(k1))) << 16);
  }
  const __m256i zero = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256i lo[4] = {zero, zero, zero, zero}, hi[4] = {zero, zero, zero, zero};
    for (int q = 0; q < pairs; ++q) {
      const uint8_t* r0 = base + static_cast<size_t>(2 * q) * stride + i;
      const uint8_t* r1 = 2 * q + 1 < count ? r0 + stride : r0;  // weight 0 past the count
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r0));
      const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r1));
      const __m256i ab_lo = _mm256_unpacklo_epi8(a, b), ab_hi = _mm256_unpackhi_epi8(a, b);
      const __m256i w[4] = {_mm256_unpacklo_epi8(ab_lo, zero), _mm256_unpackhi_epi8(ab_lo, zero),
                            _mm256_unpacklo_epi8(ab_hi, zero), _mm256_unpackhi_epi8(ab_hi, zero)};
      const __m256i klo = _mm256_set1_epi32(lo_pair[q]), khi = _mm256_set1_epi32(hi_pair[q]);
      for (int j = 0; j < 4; ++j) {
        lo[j] = _mm256_add_epi32(lo[j], _mm256_madd_epi16(w[j], klo));
        hi[j] = _mm256_add_epi32(hi[j], _mm256_madd_epi16(w[j], khi));
      }
    }
    __m256i v[4];
    for (int j = 0; j < 4; ++j) v[j] = combine(lo[j], hi[j], c.bits);
    const __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), bytes);
  }
  if (i < n) vertical_scalar(base + i, stride, c, yy, n - i, dst + i);  // the tail
}

#endif  // LMX_VISION_AVX2

}  // namespace

namespace {
bool vector_kernels_on = true;
}  // namespace

bool have_vector_kernels() {
#ifdef LMX_VISION_AVX2
  static const bool avx2 = __builtin_cpu_supports("avx2");
  return avx2 && vector_kernels_on;
#else
  return false;
#endif
}

void enable_vector_kernels(bool on) { vector_kernels_on = on; }

HorizontalPlan plan_horizontal(const Coefficients& c, int in_width) {
  HorizontalPlan p;
  const int out_width = static_cast<int>(c.first.size());
  if (!have_vector_kernels() || out_width < 2) return p;
  p.groups = (c.ksize + 4) / 5;
  // A pixel's last load (16 bytes at its last group's first tap) must stay within the input row.
  int end = 0;
  while (end < out_width - 1 && 3 * (c.first[end] + 5 * (p.groups - 1)) + 16 <= 3 * in_width) ++end;
  p.vector_end = end & ~1;
  // [pixel pair][group][lo A, B, C, hi A, B, C][lane: the pair's pixel][4 x (weight, weight)]
  p.weights.assign(static_cast<size_t>(p.vector_end / 2) * p.groups * 6 * 16, 0);
  for (int xx = 0; xx < p.vector_end; ++xx) {
    const int32_t* k = c.weights.data() + static_cast<size_t>(xx) * c.ksize;
    const auto tap = [&](int t) { return t < c.ksize ? k[t] : 0; };
    for (int g = 0; g < p.groups; ++g) {
      int16_t* base = p.weights.data() + ((static_cast<size_t>(xx / 2) * p.groups + g) * 6) * 16 + 8 * (xx % 2);
      for (int j = 0; j < 3; ++j) {  // taps (5g, 5g+1), (5g+2, 5g+3), (5g+4, none)
        const int32_t k0 = tap(5 * g + 2 * j), k1 = j < 2 ? tap(5 * g + 2 * j + 1) : 0;
        for (int e = 0; e < 4; ++e) {
          base[j * 16 + 2 * e] = weight_lo(k0);
          base[j * 16 + 2 * e + 1] = weight_lo(k1);
          base[(3 + j) * 16 + 2 * e] = weight_hi(k0);
          base[(3 + j) * 16 + 2 * e + 1] = weight_hi(k1);
        }
      }
    }
  }
  return p;
}

void horizontal_row(const uint8_t* src, uint8_t* dst, int out_width, const Coefficients& c, const HorizontalPlan& plan) {
#ifdef LMX_VISION_AVX2
  if (plan.vector_end > 0) horizontal_avx2(src, dst, c, plan);
#endif
  horizontal_scalar(src, dst, plan.vector_end, out_width, c);
}

void vertical_row(const uint8_t* base, size_t stride, const Coefficients& c, int yy, size_t n, uint8_t* dst) {
#ifdef LMX_VISION_AVX2
  if (have_vector_kernels()) return vertical_avx2(base, stride, c, yy, n, dst);
#endif
  vertical_scalar(base, stride, c, yy, n, dst);
}

}  // namespace lmx::vision::detail
