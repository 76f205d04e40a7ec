// Recurrent scans of state-space and linear-attention layers. Each carries a state
// between calls: the caller owns it (zeros for a fresh sequence) and the op updates it
// in place, so a prompt processed at once, in chunks or token by token gives the same
// result. Results are f32.
#pragma once

#include "lmx/core/tensor.h"

namespace lmx::ops {

// Selective state-space scan (Mamba, Mamba2; kernels::SsmScanArgs states the recurrence).
// x [B, L, H, P], dt [B, L, H] (after softplus), a [H, N] (negative decay rates), b and
// c [B, L, G, N] with H a multiple of G, d [H] or undefined. state: f32 contiguous
// [B, H, P, N], updated. Returns y [B, L, H, P].
Tensor ssm_scan(const Tensor& x, const Tensor& dt, const Tensor& a, const Tensor& b, const Tensor& c,
                const Tensor& d, Tensor& state);

// Gated delta rule (Qwen3-Next; kernels::GatedDeltaArgs). q and k [B, L, Hk, K] (already
// normalized and scaled), v [B, L, Hv, V] with Hv a multiple of Hk, g and beta [B, L, Hv].
// state: f32 contiguous [B, Hv, K, V], updated. Returns [B, L, Hv, V].
Tensor gated_delta_scan(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, const Tensor& beta,
                        Tensor& state);

}  // namespace lmx::ops
