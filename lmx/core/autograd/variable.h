// Reverse-mode autograd: a Var is a Tensor value plus, when a gradient flows through it,
// a node of the tape. Leaves made with requires_grad accumulate their gradient; the
// results of differentiable functions (lmx/core/autograd/functions.h) get a node only
// while recording (grad_scope.h) and when an input needs a gradient. backward() walks
// the tape once in reverse topological order and frees each node's saved tensors as it
// goes.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "lmx/core/tensor.h"

namespace lmx::autograd {

// Given the gradient of an op's output, the gradients of its inputs (in input order;
// an entry may stay undefined where needs[i] is false).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out, const std::vector<bool>& needs)>;

namespace detail {
struct Node {
  std::vector<std::shared_ptr<Node>> inputs;  // null where the input needs no gradient
  BackwardFn backward;                        // empty for a leaf
  Shape shape;                                // of the value (gradients must match it)
  Tensor grad;                                // accumulated gradient (f32)
};
}  // namespace detail

class Var {
 public:
  Var() = default;
  // A constant, or with requires_grad a leaf whose gradient accumulates over backward().
  explicit Var(Tensor value, bool requires_grad = false);

  const Tensor& value() const { return value_; }
  const Shape& shape() const { return value_.shape(); }
  bool defined() const { return value_.defined(); }
  bool requires_grad() const { return node_ != nullptr; }
  // The accumulated gradient (undefined until a backward reached this Var).
  Tensor grad() const;
  void zero_grad();
  // Replaces a leaf's gradient (gradient clipping); shape must match.
  void set_grad(Tensor grad);
  // A leaf's new value of the same shape (the optimizer's update).
  void set_value(Tensor value);

  // An op's result: recorded with `backward` when recording() and an input requires a
  // gradient, otherwise a constant.
  static Var from_op(Tensor value, const std::vector<const Var*>& inputs, BackwardFn backward);

 private:
  friend void backward(const Var& root, const Tensor& seed);
  Tensor value_;
  std::shared_ptr<detail::Node> node_;
};

// Back-propagates from `root`: with no seed, root must have one element and its gradient
// is 1; otherwise `seed` (root's shape) is the gradient of root. Leaves' gradients add up
// across calls until zero_grad(). The tape below root is consumed.
void backward(const Var& root, const Tensor& seed = Tensor());

// Sums `grad` down to `shape` over the dims a broadcast added or expanded (size 1).
Tensor sum_to(const Tensor& grad, const Shape& shape);

}  // namespace lmx::autograd
