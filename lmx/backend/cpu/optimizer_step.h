// Optimizer updates over f32 parameters (kernel_args.h states the arithmetic): one pass
// over the parameter, its gradient and the optimizer's state instead of a dozen
// element-wise ops and their temporaries.
#pragma once

#include "lmx/core/kernel_args.h"

namespace lmx::cpu {

void adam_step(const kernels::AdamStepArgs& args);

}  // namespace lmx::cpu
