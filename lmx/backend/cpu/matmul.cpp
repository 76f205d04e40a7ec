#include "lmx/backend/cpu/matmul.h"

#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/matmul_kernels.h"
#include "lmx/base/thread_pool.h"

namespace lmx::cpu {

void matmul_nt_reference(
    const float* x, int64_t ldx, const DenseWeightView& w, float* y, int64_t ldy, int64_t m) {
  for (int64_t i = 0; i < m; ++i) {
    const float* xr = x + i * ldx;
    for (int64_t j = 0; j < w.n; ++j) {
      float acc = 0.0f;
      for (int64_t p = 0; p < w.k; ++p)
        acc += xr[p] * detail::load_scalar(w.data, w.dtype, j * w.ld + p);
      y[i * ldy + j] = acc;
    }
  }
}

void gemm_f32_reference(const GemmArgs& g) {
  for (int64_t b = 0; b < g.batch; ++b) {
    const float* a = g.a + b * g.a_bs;
    const float* bb = g.b + b * g.b_bs;
    float* c = g.c + b * g.c_bs;
    for (int64_t i = 0; i < g.m; ++i) {
      for (int64_t j = 0; j < g.n; ++j) {
        float acc = 0.0f;
        for (int64_t p = 0; p < g.k; ++p)
          acc += a[i * g.a_rs + p * g.a_cs] * bb[p * g.b_rs + j * g.b_cs];
        float& out = c[i * g.c_rs + j * g.c_cs];
        out = g.beta == 0.0f ? g.alpha * acc : g.alpha * acc + g.beta * out;
      }
    }
  }
}

void matmul_nt(const float* x,
               int64_t ldx,
               const DenseWeightView& w,
               float* y,
               int64_t ldy,
               int64_t m,
               ThreadPool* pool) {
  if (m <= 0 || w.n <= 0) return;
  ThreadPool& tp = pool ? *pool : ThreadPool::global();
#ifdef LMX_CPU_X86
  if (cpu_features().use_avx512() && m >= 2 && w.dtype == Dtype::bf16) {
    detail::matmul_nt_bf16_gemm_avx512(x, ldx, w, y, ldy, m, tp);
    return;
  }
  if (cpu_features().use_avx512() && m >= 2 && w.dtype == Dtype::f32) {
    detail::matmul_nt_f32_gemm_avx512(x, ldx, w, y, ldy, m, tp);
    return;
  }
  if (cpu_features().use_avx2()) {
    detail::matmul_nt_avx2(x, ldx, w, y, ldy, m, tp);
    return;
  }
#elif defined(LMX_CPU_ARM64)
  if (cpu_features().use_neon()) {
    detail::matmul_nt_neon(x, ldx, w, y, ldy, m, tp);
    return;
  }
#endif
  // Scalar path: the reference, split over output columns.
  detail::parallel_for_on(tp, w.n, 16, [&](int64_t j0, int64_t j1) {
    DenseWeightView part = w;
    part.n = j1 - j0;
    part.data =
        static_cast<const uint8_t*>(w.data) + j0 * w.ld * static_cast<int64_t>(dtype_size(w.dtype));
    matmul_nt_reference(x, ldx, part, y + j0, ldy, m);
  });
}

void gemm_f32(const GemmArgs& args, ThreadPool* pool) {
  if (args.m <= 0 || args.n <= 0 || args.batch <= 0) return;
  ThreadPool& tp = pool ? *pool : ThreadPool::global();
#ifdef LMX_CPU_X86
  if (cpu_features().use_avx2()) {
    detail::gemm_f32_avx2(args, tp);
    return;
  }
#endif
  detail::parallel_for_on(tp, args.batch * args.m, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      GemmArgs one = args;
      const int64_t b = r / args.m, i = r % args.m;
      one.batch = 1;
      one.m = 1;
      one.a = args.a + b * args.a_bs + i * args.a_rs;
      one.b = args.b + b * args.b_bs;
      one.c = args.c + b * args.c_bs + i * args.c_rs;
      gemm_f32_reference(one);
    }
  });
}

}  // namespace lmx::cpu
