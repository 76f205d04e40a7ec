// Programmatic dependent launch (compute capability 9.0+): a kernel launched with
// launch_early may be scheduled while the stream's previous kernel still runs, once that
// kernel's blocks have all passed their own await_inputs(); its blocks then wait in
// await_inputs() until the previous kernel has finished and its writes are visible. What a
// decode step's kernel chain saves is the launch and block scheduling between kernels
// (a few microseconds of ~150 latency-bound kernels a token). Every kernel launched with
// launch_early must call await_inputs() before its first global memory access; launched
// the usual way, await_inputs() does nothing. LMX_CUDA_PDL=0 launches every kernel the
// usual way. Kernels whose grid is sized to the blocks the device holds at
// once (the tensor-core matvec and few-row GEMMs) keep the usual launch: launched early,
// some of their blocks wait for the previous kernel's SMs (4-bit decode 825 -> 785-805
// tok/s on an H100, session 17; again in session 25 with each block's first weights asked
// of L2 before the wait: 822 -> 776, 8-bit 685 -> 661). The dense matvec's blocks
// prefetching their first weights that way before await_inputs() lost too (bf16 656 -> 603).
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "lmx/base/env_switch.h"

namespace lmx::cuda::detail {

__device__ __forceinline__ void await_inputs() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Whether launches may overlap the previous kernel's end: the switch, and a device of
// compute capability 9.0 or later (read once per process: one device type per machine).
inline bool dependent_launch_on() {
  static const bool hopper = [] {
    int dev = 0, major = 0;
    return cudaGetDevice(&dev) == cudaSuccess &&
           cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major >= 9;
  }();
  return hopper && cuda_dependent_launch();
}

template <class... Params, class... Args>
cudaError_t launch_early(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                         Args&&... args) {
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid, config.blockDim = block, config.dynamicSmemBytes = smem, config.stream = stream;
  if (dependent_launch_on()) config.attrs = attribute, config.numAttrs = 1;
  if (cudaError_t e = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...); e != cudaSuccess) return e;
  return cudaGetLastError();
}

}  // namespace lmx::cuda::detail
