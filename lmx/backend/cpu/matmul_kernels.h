// Internal: entry points of the AVX2/FMA/F16C kernels (compiled with -mavx2 -mfma -mf16c
// in *_avx2.cpp; call only after cpu_features().use_avx2()), of the AVX-512 kernels
// (*_avx512.cpp; only after cpu_features().use_avx512()) and of the NEON kernels
// (*_neon.cpp; only after cpu_features().use_neon()). Each set exists only in builds for
// its architecture (LMX_CPU_X86 / LMX_CPU_ARM64).
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "lmx/backend/cpu/matmul.h"
#include "lmx/backend/cpu/quantized.h"
#include "lmx/base/thread_pool.h"

namespace lmx::cpu::detail {

// pool.run / pool.parallel_for without building a heap-allocated std::function from a
// lambda with many captures: a reference_wrapper always fits std::function's local buffer.
template <class F>
void run_on(ThreadPool& pool, const F& fn, int max_threads = 0) {
  pool.run(std::cref(fn), max_threads);
}
template <class F>
void run_dynamic_on(ThreadPool& pool, int64_t n, const F& fn, int max_threads = 0) {
  pool.run_dynamic(n, std::cref(fn), max_threads);
}
template <class F>
void parallel_for_on(ThreadPool& pool, int64_t n, int64_t grain, const F& fn) {
  pool.parallel_for(n, grain, std::cref(fn));
}

// Threads worth using for a matvec over an [n, k] weight: one per 64K weights, so a
// tiny model's projections (a few thousand weights) stay on the calling thread, where
// the hand-off of a parallel region would cost more than the work.
inline int64_t threads_for_weights(int64_t n, int64_t k) { return (n * k) >> 16; }

void matmul_nt_avx2(const float* x,
                    int64_t ldx,
                    const DenseWeightView& w,
                    float* y,
                    int64_t ldy,
                    int64_t m,
                    ThreadPool& pool);
void gemm_f32_avx2(const GemmArgs& args, ThreadPool& pool);

void quantized_matmul_view_avx2(const float* x,
                                int64_t ldx,
                                const QuantView& w,
                                float* y,
                                int64_t ldy,
                                int64_t m,
                                ThreadPool& pool);
// y = x @ dequant(p.w) for a 4- or 8-bit affine weight (quant_vecmat_avx2.cpp); false
// (nothing written) for other weights.
bool quantized_vecmat_avx2(const QuantVecmat& p);
void quantized_matmul_packed_avx2(const float* x,
                                  int64_t ldx,
                                  const PackedQuantWeight& w,
                                  float* y,
                                  int64_t ldy,
                                  int64_t m,
                                  const QuantMatmulOptions& options,
                                  ThreadPool& pool);

void quantized_matmul_packed_multi_avx2(const float* x,
                                        int64_t ldx,
                                        std::span<const QuantMatmulTarget> targets,
                                        int64_t m,
                                        const QuantMatmulOptions& options,
                                        ThreadPool& pool);
void quantized_matvec_each_avx2(std::span<const float* const> xs,
                                std::span<const QuantMatmulTarget> targets,
                                const QuantMatmulOptions& options,
                                ThreadPool& pool);

// AVX-512 tier (*_avx512.cpp; call only after cpu_features().use_avx512()).
// Prefill (m >= 4) with integer activations: int16 (vpdpwssd) or int8 (vpdpbusd, as
// asked; the AVX2 GEMM rounds to int16 for either). false when the group size has no VNNI
// kernel (the caller then takes the AVX2 path).
bool packed_gemm_int_avx512(const float* x,
                            int64_t ldx,
                            const PackedQuantWeight& w,
                            float* y,
                            int64_t ldy,
                            int64_t m,
                            ActivationPrecision activations,
                            ThreadPool& pool);

// Dense f32 weights, m >= 2 rows of x (prefill): the AVX2 GEMM's fused multiply-adds in the
// same order (the same bits) with a 12 x 32 tile of zmm accumulators.
void matmul_nt_f32_gemm_avx512(const float* x,
                               int64_t ldx,
                               const DenseWeightView& w,
                               float* y,
                               int64_t ldy,
                               int64_t m,
                               ThreadPool& pool);
// Dense bf16 weights, m >= 2 rows of x (prefill): vdpbf16ps on x rounded to bf16 where the
// CPU has AVX512_BF16 (use_avx512_bf16()), else f32 FMA with the weights widened (exact).
void matmul_nt_bf16_gemm_avx512(const float* x,
                                int64_t ldx,
                                const DenseWeightView& w,
                                float* y,
                                int64_t ldy,
                                int64_t m,
                                ThreadPool& pool);

// NEON tier (*_neon.cpp, aarch64 builds only; call only after cpu_features().use_neon()).
// Dense f32 / f16 / bf16 weights, any m.
void matmul_nt_neon(const float* x,
                    int64_t ldx,
                    const DenseWeightView& w,
                    float* y,
                    int64_t ldy,
                    int64_t m,
                    ThreadPool& pool);
// The packed quantized layout, any m: f32 activations, or int8 where
// neon_int8_activations() says so (quant_neon.cpp states the numerics).
void quantized_matmul_packed_neon(const float* x,
                                  int64_t ldx,
                                  const PackedQuantWeight& w,
                                  float* y,
                                  int64_t ldy,
                                  int64_t m,
                                  const QuantMatmulOptions& options,
                                  ThreadPool& pool);
// True when the NEON kernel takes int8 activations for `asked` on w: int8 asked, sdot
// present, 8-bit weights or 4-bit in groups of 64 or more.
bool neon_int8_activations(const PackedQuantWeight& w, ActivationPrecision asked);

// Scalar helpers shared by the reference and packing code.
inline float load_scalar(const void* p, Dtype dt, int64_t i);
// Quantized value j of a row in the MLX bit stream.
inline uint32_t mlx_q(const uint32_t* row, int bits, int64_t j) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(row);
  const int64_t bit = j * bits;
  const int64_t b0 = bit >> 3;
  const int sh = static_cast<int>(bit & 7);
  uint32_t v = bytes[b0];
  if (sh + bits > 8) v |= static_cast<uint32_t>(bytes[b0 + 1]) << 8;
  return (v >> sh) & ((1u << bits) - 1u);
}

}  // namespace lmx::cpu::detail

#include "lmx/core/half.h"

namespace lmx::cpu::detail {
inline float load_scalar(const void* p, Dtype dt, int64_t i) {
  switch (dt) {
    case Dtype::f16:
      return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case Dtype::bf16:
      return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}
}  // namespace lmx::cpu::detail
