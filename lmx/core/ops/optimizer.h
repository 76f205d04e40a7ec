// Optimizer updates as single ops (lmx/train/optimizer.cpp steps with them): one pass over
// a parameter, its gradient and the optimizer's state on the parameter's device, instead
// of a dozen element-wise ops, their temporaries and their scalar tensors.
#pragma once

#include "lmx/core/tensor.h"

namespace lmx::ops {

// The scalars of one Adam / AdamW step; each is rounded to f32 once, as an element-wise
// op with a double operand rounds it (kernel_args.h's AdamStepArgs gives the arithmetic).
struct AdamStepScalars {
  double beta1 = 0.9, beta2 = 0.999;
  double m_divisor = 1.0, v_divisor = 1.0;  // bias corrections 1 - beta^t, or 1
  double decay = 1.0;                       // AdamW's 1 - lr * weight_decay, or 1
  double eps = 1e-8, lr = 0.0;
};

// Returns the updated parameter (a new tensor) and updates the moments m and v in place.
// w and g: f32 of one shape (g may be strided); m and v: contiguous f32 of that shape; all
// on one device. Equal, bit for bit, to the same step composed of element-wise ops.
Tensor adam_step(const Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const AdamStepScalars& s);

}  // namespace lmx::ops
