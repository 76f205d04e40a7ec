// The input of linears: a tensor, or a step not yet run whose result is the tensor (an
// RMSNorm with its residual add, a gated activation), so that a backend can run that step
// inside the linears' first pass (Backend::linears_with_prologue: a decode step's norms and
// activations without launches of their own). Whoever reads it either hands it to
// ops::linears_with_prologue or takes value(), which runs the step once.
#pragma once

#include <optional>
#include <span>
#include <vector>

#include "lmx/core/ops/nn.h"
#include "lmx/core/quantized_weight.h"
#include "lmx/core/tensor.h"

namespace lmx::ops {

class LinearInput {
 public:
  LinearInput(Tensor x);  // NOLINT(google-explicit-constructor): a tensor is its own input
  // act(gate) * up; scratch_gate: gate is a buffer of the caller's own that the product may
  // overwrite (f32, contiguous: one activation buffer fewer where the step runs alone).
  static LinearInput gated(GatedActivation act, Tensor gate, Tensor up, bool scratch_gate = false);
  // rms_norm(x, weight, eps, unit_offset), or with a residual add_rms_norm (x + residual
  // into *sum, which must then be set; it is written when the input is read).
  static LinearInput rms_normed(Tensor x, Tensor residual, Tensor weight, float eps, bool unit_offset, Tensor* sum);

  bool deferred() const { return kind_ != Kind::tensor; }
  const Shape& shape() const { return x_.shape(); }
  Device device() const { return x_.device(); }
  // The tensor: the step run the first time (and *sum written), the same tensor after.
  const Tensor& value() const;

 private:
  friend std::optional<std::vector<Tensor>> linears_with_prologue(const LinearInput&,
                                                                  std::span<const Tensor* const>,
                                                                  std::span<const QuantizedWeight* const>,
                                                                  std::span<const Tensor>);
  enum class Kind { tensor, gated, rms_norm };
  explicit LinearInput(Kind kind) : kind_(kind) {}

  Kind kind_ = Kind::tensor;
  Tensor x_;         // the tensor, the gate or the norm's input
  Tensor other_;     // up, or the residual (may be undefined)
  Tensor weight_;    // the norm's (may be undefined)
  GatedActivation act_ = GatedActivation::silu;
  float eps_ = 0.0f;
  bool unit_offset_ = false;
  bool scratch_gate_ = false;
  Tensor* sum_ = nullptr;
  mutable Tensor value_;  // once run
};

// linears(in.value(), dense, biases) or quantized_linears(in.value(), quantized, biases)
// (one of dense / quantized empty) with the input's step run inside the linears where the
// backend can (one row on a device with such kernels: f32 inputs, prepared quantized or
// f16 / bf16 dense weights); nullopt, having run nothing, where it cannot.
std::optional<std::vector<Tensor>> linears_with_prologue(const LinearInput& in,
                                                         std::span<const Tensor* const> dense,
                                                         std::span<const QuantizedWeight* const> quantized,
                                                         std::span<const Tensor> biases);

// The backend's activation of a gated activation.
kernels::Activation kernel_activation(GatedActivation act);

}  // namespace lmx::ops
