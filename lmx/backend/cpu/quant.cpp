// MLX affine quantization on the MLX layout: quantize / dequantize, the scalar reference
// matmul and the dispatch to the AVX2 kernel that reads the layout as stored. The load-time
// packed layout lives in quant_pack.cpp.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/matmul_kernels.h"
#include "lmx/backend/cpu/quantized.h"
#include "lmx/base/thread_pool.h"
#include "lmx/base/error.h"
#include "lmx/core/half.h"

namespace lmx::cpu {
namespace {

void store_scalar(void* p, Dtype dt, int64_t i, float v) {
  switch (dt) {
    case Dtype::f16:
      static_cast<uint16_t*>(p)[i] = f32_to_f16(v);
      break;
    case Dtype::bf16:
      static_cast<uint16_t*>(p)[i] = f32_to_bf16(v);
      break;
    default:
      static_cast<float*>(p)[i] = v;
      break;
  }
}

}  // namespace


void quantize_affine(const float* w,
                     int64_t n,
                     int64_t k,
                     int bits,
                     int group_size,
                     uint32_t* out_w,
                     void* out_scales,
                     void* out_biases,
                     Dtype scale_dtype) {
  const float n_bins = static_cast<float>((1 << bits) - 1);
  const float eps = 1e-7f;
  const int64_t groups = k / group_size;
  const int64_t words = k * bits / 32;
  auto* out_bytes = reinterpret_cast<uint8_t*>(out_w);
  std::memset(out_w, 0, static_cast<size_t>(n * words) * 4);
  // Rows are independent: split them over the pool (conversion of whole checkpoints).
  detail::parallel_for_on(ThreadPool::global(), n, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      uint8_t* row_bytes = out_bytes + r * words * 4;
      for (int64_t g = 0; g < groups; ++g) {
        const float* src = w + r * k + g * group_size;
        float w_min = std::numeric_limits<float>::infinity();
        float w_max = -w_min;
        for (int j = 0; j < group_size; ++j) {
          w_max = std::max(w_max, src[j]);
          w_min = std::min(w_min, src[j]);
        }
        const bool mask = std::abs(w_min) > std::abs(w_max);
        float scale = std::max((w_max - w_min) / n_bins, eps);
        scale = mask ? scale : -scale;
        const float edge = mask ? w_min : w_max;
        const float q0 = std::rint(edge / scale);
        float bias = 0.0f;
        if (q0 != 0.0f) {
          scale = edge / q0;
          bias = edge;
        }
        for (int j = 0; j < group_size; ++j) {
          float q = std::rint((src[j] - bias) / scale);
          q = std::min(std::max(q, 0.0f), n_bins);
          const uint32_t qi = static_cast<uint32_t>(q);
          const int64_t bit = (g * group_size + j) * bits;
          const uint32_t shifted = qi << (bit & 7);
          row_bytes[bit >> 3] |= static_cast<uint8_t>(shifted & 0xffu);
          if ((bit & 7) + bits > 8) row_bytes[(bit >> 3) + 1] |= static_cast<uint8_t>(shifted >> 8);
        }
        store_scalar(out_scales, scale_dtype, r * groups + g, scale);
        store_scalar(out_biases, scale_dtype, r * groups + g, bias);
      }
    }
  });
}

void dequantize_affine(
    const QuantView& w, int64_t row_begin, int64_t row_end, float* out, int64_t ldo) {
  const int64_t ws = w.w_row_stride(), ss = w.s_row_stride();
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint32_t* row = w.w + r * ws;
    float* dst = out + (r - row_begin) * ldo;
    for (int64_t g = 0; g < w.k / w.group_size; ++g) {
      const float s = detail::load_scalar(w.scales, w.scale_dtype, r * ss + g);
      const float b = detail::load_scalar(w.biases, w.scale_dtype, r * ss + g);
      for (int64_t j = g * w.group_size; j < (g + 1) * w.group_size; ++j)
        dst[j] = s * static_cast<float>(detail::mlx_q(row, w.bits, j)) + b;
    }
  }
}

void quantized_matmul_reference(
    const float* x, int64_t ldx, const QuantView& w, float* y, int64_t ldy, int64_t m) {
  const int64_t ws = w.w_row_stride(), ss = w.s_row_stride();
  for (int64_t i = 0; i < m; ++i) {
    const float* xr = x + i * ldx;
    for (int64_t r = 0; r < w.n; ++r) {
      const uint32_t* row = w.w + r * ws;
      float acc = 0.0f;
      for (int64_t j = 0; j < w.k; ++j) {
        const int64_t g = j / w.group_size;
        const float s = detail::load_scalar(w.scales, w.scale_dtype, r * ss + g);
        const float b = detail::load_scalar(w.biases, w.scale_dtype, r * ss + g);
        acc += xr[j] * (s * static_cast<float>(detail::mlx_q(row, w.bits, j)) + b);
      }
      y[i * ldy + r] = acc;
    }
  }
}

void quantized_matmul(const float* x,
                      int64_t ldx,
                      const QuantView& w,
                      float* y,
                      int64_t ldy,
                      int64_t m,
                      ThreadPool* pool) {
  if (m <= 0 || w.n <= 0) return;
  ThreadPool& tp = pool ? *pool : ThreadPool::global();
#ifdef LMX_CPU_X86
  if (cpu_features().use_avx2()) {
    detail::quantized_matmul_view_avx2(x, ldx, w, y, ldy, m, tp);
    return;
  }
#endif
  detail::parallel_for_on(tp, w.n, 16, [&](int64_t r0, int64_t r1) {
    QuantView part = w;
    part.n = r1 - r0;
    part.w = w.w + r0 * w.w_row_stride();
    part.w_stride = w.w_row_stride();
    part.s_stride = w.s_row_stride();
    const int64_t soff = r0 * w.s_row_stride() * static_cast<int64_t>(dtype_size(w.scale_dtype));
    part.scales = static_cast<const uint8_t*>(w.scales) + soff;
    part.biases = static_cast<const uint8_t*>(w.biases) + soff;
    quantized_matmul_reference(x, ldx, part, y + r0, ldy, m);
  });
}


}  // namespace lmx::cpu
