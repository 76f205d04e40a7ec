// On / off switches read from the environment at each call (a getenv is cheap next to the
// work each one gates, and tests can flip them): "0" is off, any other non-empty value
// on, unset or empty keeps the default. Plain C++17 (the CUDA sources include it too).
#pragma once

#include <cstdlib>

namespace lmx {

inline bool env_switch(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  return !(v[0] == '0' && v[1] == '\0');
}

// The CUDA prefill paths of issue 16, session 12, each off by default until a GPU run has
// verified it (docs/performance.md). Read by lmx/nn and lmx/backend/cuda alike.
// Prompts of bf16 / f16-weight models: K / V in bf16 and the tensor-core attention.
inline bool cuda_flash_attention() { return env_switch("LMX_CUDA_FLASH_ATTENTION", false); }
// Prompts: projections of one x share one bf16 rounding of x (q / k / v, gate / up), the
// MLP in one pass (no row chunks), 16-byte-load rounding of x for the GEMMs.
inline bool cuda_prefill_fused() { return env_switch("LMX_CUDA_PREFILL_FUSED", false); }
// Element-wise copies / binaries and RoPE with 32-bit index arithmetic, contiguous f32
// binaries without any (the same values).
inline bool cuda_fast_elementwise() { return env_switch("LMX_CUDA_FAST_ELEMENTWISE", false); }

}  // namespace lmx
