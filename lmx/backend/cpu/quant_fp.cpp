// MLX's floating-point quantization modes: codes, quantize / dequantize, the scalar
// reference matmul and the dispatch (AVX2 matvec in quant_fp_avx2.cpp; prefill through
// the dense GEMM on dequantized blocks of rows).
#include "lmx/backend/cpu/quant_fp.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/matmul.h"
#include "lmx/backend/cpu/matmul_kernels.h"
#include "lmx/base/thread_pool.h"

namespace lmx::cpu {
namespace {

// Rows of x from which prefill dequantizes blocks of W and runs the dense GEMM.
constexpr int64_t kGemmRows = 4;
// Rows of W dequantized at a time on that path (64 x k f32 stays in L2 for k <= 4096).
constexpr int64_t kGemmBlockRows = 64;

int element_bits(QuantMode mode) { return mode == QuantMode::mxfp8 ? 8 : 4; }

uint32_t element_code(const uint32_t* row, int bits, int64_t j) {
  if (bits == 8) return (row[j >> 2] >> ((j & 3) * 8)) & 0xffu;
  return (row[j >> 3] >> ((j & 7) * 4)) & 0xfu;
}

float element_value(int bits, uint32_t code) {
  return bits == 8 ? fp8_e4m3_value(static_cast<uint8_t>(code)) : fp4_e2m1_value(static_cast<uint8_t>(code));
}

// The nearest e2m1 code of v, ties to the entry of smaller magnitude and +0 for anything
// that rounds to zero: what MLX's argmin over |v - table| picks, the table being ordered
// +0, +0.5, ..., +6, -0, -0.5, ..., -6 (the first minimum wins). NaN gives +0.
uint8_t fp4_e2m1_encode(float v) {
  const float a = std::fabs(v);
  uint8_t idx;
  if (!(a > 0.25f)) idx = 0;
  else if (a <= 0.75f) idx = 1;
  else if (a <= 1.25f) idx = 2;
  else if (a <= 1.75f) idx = 3;
  else if (a <= 2.5f) idx = 4;
  else if (a <= 3.5f) idx = 5;
  else if (a <= 5.0f) idx = 6;
  else idx = 7;
  return idx != 0 && v < 0.0f ? static_cast<uint8_t>(idx | 8) : idx;
}

}  // namespace

float fp4_e2m1_value(uint8_t code) {
  const int e = (code >> 1) & 3, m = code & 1;
  const float mag = e == 0 ? 0.5f * static_cast<float>(m) : std::ldexp(1.0f + 0.5f * static_cast<float>(m), e - 1);
  return (code & 8) ? -mag : mag;
}

float fp8_e4m3_value(uint8_t code) {
  const int e = (code >> 3) & 15, m = code & 7;
  const float mag = e == 0 ? std::ldexp(static_cast<float>(m), -9) : std::ldexp(static_cast<float>(8 + m), e - 10);
  return (code & 0x80) ? -mag : mag;
}

float e8m0_value(uint8_t code) { return std::ldexp(1.0f, static_cast<int>(code) - 127); }

float fp_scale_value(QuantMode mode, uint8_t code) {
  return mode == QuantMode::nvfp4 ? fp8_e4m3_value(code) : e8m0_value(code);
}

uint8_t fp8_e4m3_encode(float x) {
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const float a = std::fabs(x);
  // 464 is halfway from the largest code MLX produces (448) to 480: it and above saturate.
  if (!(a < 464.0f)) return sign | 0x7e;
  if (a < 0x1p-6f) {
    // Subnormals are multiples of 2^-9; 8 * 2^-9 rounds up to the smallest normal (0x08).
    return sign | static_cast<uint8_t>(std::nearbyint(a * 512.0f));
  }
  int e;
  const float frac = std::frexp(a, &e);  // a = frac * 2^e, frac in [0.5, 1)
  int mant = static_cast<int>(std::nearbyint((frac * 2.0f - 1.0f) * 8.0f));
  int exp = e - 1;
  if (mant == 8) mant = 0, ++exp;
  return sign | static_cast<uint8_t>(((exp + 7) << 3) | mant);
}

void quantize_fp(const float* w, int64_t n, int64_t k, QuantMode mode, uint32_t* out_w, uint8_t* out_scales) {
  const int bits = element_bits(mode);
  const int64_t group = mode == QuantMode::nvfp4 ? 16 : 32;
  const int64_t groups = k / group;
  const int64_t words = k * bits / 32;
  const float max_element = bits == 4 ? 6.0f : 448.0f;
  std::memset(out_w, 0, static_cast<size_t>(n * words) * 4);
  detail::parallel_for_on(ThreadPool::global(), n, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      uint32_t* row = out_w + r * words;
      for (int64_t g = 0; g < groups; ++g) {
        const float* src = w + r * k + g * group;
        float amax = 0.0f;
        for (int64_t j = 0; j < group; ++j) amax = std::max(amax, std::fabs(src[j]));
        const float s = amax / max_element;
        uint8_t code;
        if (mode == QuantMode::nvfp4) {
          code = fp8_e4m3_encode(s);
        } else if (!std::isfinite(s)) {
          code = 0xff;
        } else {
          const int e = s == 0.0f ? 0 : static_cast<int>(std::nearbyint(std::log2(s)));
          code = static_cast<uint8_t>(std::clamp(e, -127, 127) + 127);
        }
        out_scales[r * groups + g] = code;
        const float scale = fp_scale_value(mode, code);
        for (int64_t j = 0; j < group; ++j) {
          const float v = src[j] / scale;
          const uint32_t q = bits == 8 ? fp8_e4m3_encode(v) : fp4_e2m1_encode(v);
          const int64_t e = g * group + j;
          if (bits == 8) row[e >> 2] |= q << ((e & 3) * 8);
          else row[e >> 3] |= q << ((e & 7) * 4);
        }
      }
    }
  });
}

void dequantize_fp(const QuantView& w, int64_t row_begin, int64_t row_end, float* out, int64_t ldo) {
  const int64_t ws = w.w_row_stride(), ss = w.s_row_stride();
  const auto* scales = static_cast<const uint8_t*>(w.scales);
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint32_t* row = w.w + r * ws;
    float* dst = out + (r - row_begin) * ldo;
    for (int64_t g = 0; g < w.k / w.group_size; ++g) {
      const float s = fp_scale_value(w.mode, scales[r * ss + g]);
      for (int64_t j = g * w.group_size; j < (g + 1) * w.group_size; ++j)
        dst[j] = s * element_value(w.bits, element_code(row, w.bits, j));
    }
  }
}

void quantized_matmul_fp_reference(
    const float* x, int64_t ldx, const QuantView& w, float* y, int64_t ldy, int64_t m) {
  const int64_t ws = w.w_row_stride(), ss = w.s_row_stride();
  const auto* scales = static_cast<const uint8_t*>(w.scales);
  for (int64_t i = 0; i < m; ++i) {
    const float* xr = x + i * ldx;
    for (int64_t r = 0; r < w.n; ++r) {
      const uint32_t* row = w.w + r * ws;
      float acc = 0.0f;
      for (int64_t g = 0; g < w.k / w.group_size; ++g) {
        float group_acc = 0.0f;
        for (int64_t j = g * w.group_size; j < (g + 1) * w.group_size; ++j)
          group_acc += xr[j] * element_value(w.bits, element_code(row, w.bits, j));
        acc += fp_scale_value(w.mode, scales[r * ss + g]) * group_acc;
      }
      y[i * ldy + r] = acc;
    }
  }
}

void quantized_matmul_fp(const float* x,
                         int64_t ldx,
                         const QuantView& w,
                         float* y,
                         int64_t ldy,
                         int64_t m,
                         ThreadPool* pool) {
  if (m <= 0 || w.n <= 0) return;
  ThreadPool& tp = pool ? *pool : ThreadPool::global();
  if (m >= kGemmRows) {
    // Each block of rows is dequantized into this thread's buffer and multiplied by the
    // dense kernel (a region inside a region runs inline on the thread).
    const int64_t blocks = (w.n + kGemmBlockRows - 1) / kGemmBlockRows;
    detail::parallel_for_on(tp, blocks, 1, [&](int64_t b0, int64_t b1) {
      std::vector<float> block(static_cast<size_t>(std::min(kGemmBlockRows, w.n) * w.k));
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t r0 = b * kGemmBlockRows, r1 = std::min(w.n, r0 + kGemmBlockRows);
        dequantize_fp(w, r0, r1, block.data(), w.k);
        DenseWeightView dense;
        dense.data = block.data();
        dense.dtype = Dtype::f32;
        dense.n = r1 - r0;
        dense.k = w.k;
        dense.ld = w.k;
        matmul_nt(x, ldx, dense, y + r0, ldy, m, &tp);
      }
    });
    return;
  }
  const int64_t grain = std::max<int64_t>(8, 65536 / std::max<int64_t>(1, w.k));
#ifdef LMX_CPU_X86
  const bool avx2 = cpu_features().use_avx2();
#endif
  detail::parallel_for_on(tp, w.n, grain, [&](int64_t r0, int64_t r1) {
#ifdef LMX_CPU_X86
    if (avx2) {
      detail::quantized_matvec_fp_avx2(x, ldx, w, y, ldy, m, r0, r1);
      return;
    }
#endif
    QuantView part = w;
    part.n = r1 - r0;
    part.w = w.w + r0 * w.w_row_stride();
    part.w_stride = w.w_row_stride();
    part.s_stride = w.s_row_stride();
    part.scales = static_cast<const uint8_t*>(w.scales) + r0 * w.s_row_stride();
    quantized_matmul_fp_reference(x, ldx, part, y + r0, ldy, m);
  });
}

}  // namespace lmx::cpu
