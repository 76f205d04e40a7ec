// Ops of a CUDA decode step: the KV append of a captured step (lmx/core/step_values.h)
// and the fused RoPE + append of one token. Devices with fused decode kernels only
// (graph_backend_for, lmx/core/device_graph.h); the CPU keeps the per-op path.
#pragma once

#include "lmx/core/ops/nn.h"
#include "lmx/core/tensor.h"

namespace lmx::ops {

// dst[b, h, p + s, d] = src[b, h, s, d] with p the position of this thread's captured
// decode step, read on the device: a KV cache append that a replayed step graph repeats
// at each token. dst f32 [B, H, capacity, D] on the step's device, src [B, H, S, D]
// (converted to f32). Throws InvalidArgument outside a step.
void write_at_step_position(const Tensor& dst, const Tensor& src);

// One token of batch 1 at position p.offset (in a captured step: read on the device):
// returns rope(q) [1, Hq, 1, D] and writes rope(k) into kbuf[:, :, p.offset] and v into
// vbuf[:, :, p.offset] (f32 [1, Hkv, capacity, D / Dv]), rotated as ops::rope rotates.
Tensor rope_append(const Tensor& q, const Tensor& k, const Tensor& v, const RopeParams& p, const Tensor& kbuf,
                   const Tensor& vbuf);

}  // namespace lmx::ops
