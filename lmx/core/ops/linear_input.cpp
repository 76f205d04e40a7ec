#include "lmx/core/ops/linear_input.h"

#include <utility>

namespace lmx::ops {

LinearInput::LinearInput(Tensor x) : x_(std::move(x)) {}

LinearInput LinearInput::gated(GatedActivation act, Tensor gate, Tensor up, bool scratch_gate) {
  LinearInput in(Kind::gated);
  in.x_ = std::move(gate);
  in.other_ = std::move(up);
  in.act_ = act;
  in.scratch_gate_ = scratch_gate;
  return in;
}

LinearInput LinearInput::rms_normed(Tensor x, Tensor residual, Tensor weight, float eps, bool unit_offset,
                                    Tensor* sum) {
  LinearInput in(Kind::rms_norm);
  in.x_ = std::move(x);
  in.other_ = std::move(residual);
  in.weight_ = std::move(weight);
  in.eps_ = eps;
  in.unit_offset_ = unit_offset;
  in.sum_ = sum;
  return in;
}

const Tensor& LinearInput::value() const {
  if (kind_ == Kind::tensor) return x_;
  if (!value_.defined()) {
    if (kind_ == Kind::gated) {
      if (scratch_gate_ && x_.dtype() == Dtype::f32 && x_.is_contiguous()) {
        Tensor gate = x_;
        value_ = gated_activation_(act_, gate, other_);
      } else {
        value_ = gated_activation(act_, x_, other_);
      }
    } else if (other_.defined()) {
      value_ = add_rms_norm(x_, other_, weight_, eps_, unit_offset_, sum_);
    } else {
      value_ = rms_norm(x_, weight_, eps_, unit_offset_);
    }
  }
  return value_;
}

}  // namespace lmx::ops
