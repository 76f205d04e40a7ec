// Row reductions and the recurrent scans (Mamba / Mamba2 selective scan, the gated delta
// rule) on the GPU, computing what lmx/core/ops/reduce.cpp and lmx/backend/cpu/ssm_scan.h
// document. Plain C++17, no lmx includes (launch_args.h's conventions).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace lmx::cuda::detail {

// kind: lmx::ReduceKernel's values (sum, mean, max, min, logsumexp, argmax); x [rows, n]
// contiguous of dtype (DtypeCode), out of the same dtype (i32 for argmax). scratch: device
// memory of reduce_rows_scratch() bytes where that is not 0 (the argmax of long f32 rows,
// over slices of a row), else unused.
size_t reduce_rows_scratch(int kind, int dtype, int64_t rows, int64_t n);
cudaError_t launch_reduce_rows(int kind, const void* x, int dtype, int64_t rows, int64_t n, void* out, void* scratch,
                               cudaStream_t stream);

// kernels::SsmScanArgs.
struct SsmScan {
  int64_t batch = 0, seq = 0, heads = 0, head_dim = 0, state_dim = 0, groups = 1;
  const float *x = nullptr, *dt = nullptr, *a = nullptr, *b = nullptr, *c = nullptr, *d = nullptr;
  float *state = nullptr, *y = nullptr;
};
cudaError_t launch_ssm_scan(const SsmScan& a, cudaStream_t stream);

// kernels::GatedDeltaArgs.
struct GatedDelta {
  int64_t batch = 0, seq = 0, k_heads = 0, v_heads = 0, k_dim = 0, v_dim = 0;
  const float *q = nullptr, *k = nullptr, *v = nullptr, *g = nullptr, *beta = nullptr;
  float *state = nullptr, *out = nullptr;
};
cudaError_t launch_gated_delta_scan(const GatedDelta& a, cudaStream_t stream);

}  // namespace lmx::cuda::detail
