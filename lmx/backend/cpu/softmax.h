// Row-wise softmax and log-softmax over f32, numerically stable (max subtracted).
#pragma once

#include <cstdint>

#include "lmx/base/thread_pool.h"
#include "lmx/core/kernel_args.h"

namespace lmx::cpu {

// out[r, :] = softmax(x[r, :]). x: [rows, dim], row stride ldx; out likewise (ldo);
// out may be x (ldo == ldx). -inf entries get probability 0. A row whose entries are
// all -inf has no defined distribution: it gives all zeros (not NaN), the same
// convention as fully masked attention rows. NaN inputs give NaN rows.
void softmax(const float* x,
             int64_t rows,
             int64_t dim,
             int64_t ldx,
             float* out,
             int64_t ldo,
             ThreadPool& pool);

// out[r, :] = x[r, :] - logsumexp(x[r, :]). An all -inf row gives all -inf.
void log_softmax(const float* x,
                 int64_t rows,
                 int64_t dim,
                 int64_t ldx,
                 float* out,
                 int64_t ldo,
                 ThreadPool& pool);

// The cross-entropy's gradient over the logits (kernels::CrossEntropyGradArgs), row-parallel.
void cross_entropy_grad(const kernels::CrossEntropyGradArgs& args, ThreadPool& pool);

}  // namespace lmx::cpu
