// Row-wise normalization kernels (RMSNorm, LayerNorm) over f32 activations.
// Raw-pointer kernels: callers (lmx/core ops) validate shapes and dtypes first.
#pragma once

#include <cstdint>

#include "lmx/base/thread_pool.h"
#include "lmx/core/kernel_args.h"

namespace lmx::cpu {

using kernels::ChannelVector;
using kernels::RmsNormOptions;
using kernels::LayerNormOptions;



// out[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * w   (w: see RmsNormOptions; with
// options.residual, x[r, :] + residual[r, :] is written to options.sum and normed)
// x: [rows, dim] with row stride ldx; out: [rows, dim] with row stride ldo. out may
// be x itself (in place, ldo == ldx). The sum of squares is accumulated in f32 lanes
// (AVX2, AVX-512) or double (scalar); parity with HF's f32 computation is ~1e-6 relative.
void rms_norm(const float* x,
              int64_t rows,
              int64_t dim,
              int64_t ldx,
              float* out,
              int64_t ldo,
              const RmsNormOptions& options,
              ThreadPool& pool);


// out[r, :] = (x[r, :] - mean) * rsqrt(var + eps) * w + b, var the biased variance
// (as torch.nn.LayerNorm). Same layout rules as rms_norm.
void layer_norm(const float* x,
                int64_t rows,
                int64_t dim,
                int64_t ldx,
                float* out,
                int64_t ldo,
                const LayerNormOptions& options,
                ThreadPool& pool);

}  // namespace lmx::cpu
