// The transposed use of a quantized weight, y = x @ dequant(W) (x over the rows of W): the
// scalar reference (a row at a time, any mode), the split form of 4- and 8-bit affine weights
// in plain C++ and the dispatch to its AVX2 kernel (quant_vecmat_avx2.cpp).
#include <algorithm>
#include <vector>

#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/matmul_kernels.h"
#include "lmx/backend/cpu/quant_fp.h"
#include "lmx/backend/cpu/quantized.h"
#include "lmx/base/thread_pool.h"

namespace lmx::cpu {
namespace {

// 4- and 8-bit affine weights without AVX2: the split form of quant_vecmat_avx2.cpp in plain
// C++ (per block of 32 columns inside one group, acc += (x[r] * scale) * q, then + the
// block's sum of x[r] * bias), which the compiler may vectorize for the target.
template <int Bits>
void vecmat_block(const QuantView& w, const float* x, int64_t col0, float* y) {
  const int64_t row_bytes = w.w_row_stride() * 4, ss = w.s_row_stride(), g = col0 / w.group_size;
  const uint8_t* q = reinterpret_cast<const uint8_t*>(w.w) + col0 * Bits / 8;
  float acc[32] = {};
  float bias_sum = 0.0f;
  for (int64_t r = 0; r < w.n; ++r, q += row_bytes) {
    const float c = x[r] * detail::load_scalar(w.scales, w.scale_dtype, r * ss + g);
    bias_sum += x[r] * detail::load_scalar(w.biases, w.scale_dtype, r * ss + g);
    if constexpr (Bits == 4) {
      for (int t = 0; t < 16; ++t) {
        acc[2 * t] += c * static_cast<float>(q[t] & 15);
        acc[2 * t + 1] += c * static_cast<float>(q[t] >> 4);
      }
    } else {
      for (int t = 0; t < 32; ++t) acc[t] += c * static_cast<float>(q[t]);
    }
  }
  for (int t = 0; t < 32; ++t) y[col0 + t] = acc[t] + bias_sum;
}

bool vecmat_split(const QuantVecmat& p) {
  const QuantView& w = p.w;
  if (w.mode != QuantMode::affine || (w.bits != 4 && w.bits != 8) || w.group_size % 32 != 0) return false;
  for (int64_t col0 = 0; col0 < w.k; col0 += 32) {
    if (w.bits == 4) {
      vecmat_block<4>(w, p.x, col0, p.y);
    } else {
      vecmat_block<8>(w, p.x, col0, p.y);
    }
  }
  return true;
}

}  // namespace

void quantized_vecmat_reference(const QuantVecmat& p) {
  const QuantView& w = p.w;
  thread_local std::vector<float> row;
  row.resize(static_cast<size_t>(w.k));
  std::fill(p.y, p.y + w.k, 0.0f);
  for (int64_t r = 0; r < w.n; ++r) {
    if (w.mode != QuantMode::affine) {
      dequantize_fp(w, r, r + 1, row.data(), w.k);
    } else {
      dequantize_affine(w, r, r + 1, row.data(), w.k);
    }
    const float xr = p.x[r];
    for (int64_t j = 0; j < w.k; ++j) p.y[j] += xr * row[static_cast<size_t>(j)];
  }
}

void quantized_vecmat(std::span<const QuantVecmat> products, ThreadPool* pool) {
  if (products.empty()) return;
  ThreadPool& tp = pool ? *pool : ThreadPool::global();
  int64_t weights = 0;
  for (const QuantVecmat& p : products) weights += p.w.n * p.w.k;
  const int64_t n = static_cast<int64_t>(products.size());
  const int nt = static_cast<int>(
      std::clamp<int64_t>(detail::threads_for_weights(1, weights), 1, std::min<int64_t>(tp.num_threads(), n)));
  auto one = [&](int64_t i) {
    const QuantVecmat& p = products[static_cast<size_t>(i)];
#ifdef LMX_CPU_X86
    if (cpu_features().use_avx2() && detail::quantized_vecmat_avx2(p)) return;
#endif
    if (!vecmat_split(p)) quantized_vecmat_reference(p);
  };
  if (nt <= 1) {
    for (int64_t i = 0; i < n; ++i) one(i);
    return;
  }
  detail::run_dynamic_on(tp, n, one, nt);
}

}  // namespace lmx::cpu
