// Recurrent scans over f32 activations: the selective state-space scan of Mamba /
// Mamba2 and the gated delta rule of Qwen3-Next (kernel_args.h states the recurrences).
// Each (batch row, head) is an independent recurrence; the pool splits them.
#pragma once

#include "lmx/base/thread_pool.h"
#include "lmx/core/kernel_args.h"

namespace lmx::cpu {

void ssm_scan(const kernels::SsmScanArgs& args, ThreadPool& pool);
void gated_delta_scan(const kernels::GatedDeltaArgs& args, ThreadPool& pool);

}  // namespace lmx::cpu
