// kernels::Activation on the device, as cpu::activation_scalar computes it (the element-wise
// kernels and the decode matvecs' gated prologue share it).
#pragma once

namespace lmx::cuda::detail {

__device__ __forceinline__ float activation(int act, float x) {
  switch (act) {
    case 0: return x / (1.0f + expf(-x));
    case 1: return 0.5f * x * erfcf(-x * 0.707106781186547524f);
    case 2: {
      const float u = 0.797884560802865356f * (x + 0.044715f * x * x * x);
      return x / (1.0f + expf(-2.0f * u));
    }
    case 3: return expf(x);
    case 4: return tanhf(x);
    case 5: return 1.0f / (1.0f + expf(-x));
    default: return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
  }
}

}  // namespace lmx::cuda::detail
