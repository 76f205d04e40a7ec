#include "lmx/core/autograd/variable.h"

#include <unordered_set>

#include "lmx/base/error.h"
#include "lmx/core/autograd/grad_scope.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/reduce.h"

namespace lmx::autograd {

Var::Var(Tensor value, bool requires_grad) : value_(std::move(value)) {
  if (requires_grad) {
    if (!value_.defined()) throw InvalidArgument("autograd: a leaf that requires a gradient needs a value");
    node_ = std::make_shared<detail::Node>();
    node_->shape = value_.shape();
  }
}

Tensor Var::grad() const { return node_ ? node_->grad : Tensor(); }

void Var::zero_grad() {
  if (node_) node_->grad = Tensor();
}

void Var::set_grad(Tensor grad) {
  if (!node_) throw InvalidArgument("autograd: set_grad on a Var that does not require a gradient");
  if (grad.shape() != node_->shape) {
    throw ShapeError("autograd: set_grad " + shape_str(grad.shape()) + " for a Var of shape " + shape_str(node_->shape));
  }
  node_->grad = std::move(grad);
}

void Var::set_value(Tensor value) {
  if (value.shape() != value_.shape()) {
    throw ShapeError("autograd: set_value " + shape_str(value.shape()) + " for a Var of shape " +
                     shape_str(value_.shape()));
  }
  value_ = std::move(value);
}

Var Var::from_op(Tensor value, const std::vector<const Var*>& inputs, BackwardFn backward) {
  Var out(std::move(value));
  if (!recording()) return out;
  bool any = false;
  for (const Var* v : inputs) any = any || (v && v->node_);
  if (!any) return out;
  auto node = std::make_shared<detail::Node>();
  node->shape = out.value_.shape();
  for (const Var* v : inputs) node->inputs.push_back(v ? v->node_ : nullptr);
  node->backward = std::move(backward);
  out.node_ = std::move(node);
  return out;
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  Tensor g = grad;
  while (g.ndim() > static_cast<int>(shape.size())) g = ops::sum(g, 0);
  for (int d = 0; d < g.ndim(); ++d) {
    if (shape[static_cast<size_t>(d)] == 1 && g.dim(d) != 1) g = ops::sum(g, d, /*keepdims=*/true);
  }
  if (g.shape() != shape) {
    throw InternalError("autograd: gradient " + shape_str(grad.shape()) + " does not reduce to " + shape_str(shape));
  }
  return g;
}

namespace {

void accumulate(detail::Node& node, Tensor g) {
  if (g.shape() != node.shape) {
    throw InternalError("autograd: gradient of shape " + shape_str(g.shape()) + " for a value of shape " +
                        shape_str(node.shape));
  }
  if (g.dtype() != Dtype::f32) g = g.to(Dtype::f32);
  node.grad = node.grad.defined() ? ops::add(node.grad, g) : g;
}

// Nodes reachable from root, each after every node that consumes it. The list owns
// them: backward() releases each node's inputs once it is done with it.
std::vector<std::shared_ptr<detail::Node>> reverse_topological(const std::shared_ptr<detail::Node>& root) {
  std::vector<std::shared_ptr<detail::Node>> order;
  std::unordered_set<detail::Node*> seen{root.get()};
  std::vector<std::pair<std::shared_ptr<detail::Node>, size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    auto& top = stack.back();
    if (top.second < top.first->inputs.size()) {
      std::shared_ptr<detail::Node> in = top.first->inputs[top.second++];
      if (in && seen.insert(in.get()).second) stack.emplace_back(std::move(in), 0);
    } else {
      order.push_back(std::move(top.first));
      stack.pop_back();
    }
  }
  return {order.rbegin(), order.rend()};
}

}  // namespace

void backward(const Var& root, const Tensor& seed) {
  if (!root.requires_grad()) {
    throw InvalidArgument("backward: the value does not depend on anything that requires a gradient "
                          "(was it computed inside a GradScope?)");
  }
  Tensor g = seed;
  if (!g.defined()) {
    if (root.value().numel() != 1) {
      throw ShapeError("backward: the root " + shape_str(root.shape()) + " is not a scalar; pass a seed gradient");
    }
    g = Tensor::full(root.shape(), 1.0, Dtype::f32, root.value().device());
  }
  const std::shared_ptr<detail::Node> top = root.node_;  // kept alive while walking
  accumulate(*top, g);
  for (const auto& node : reverse_topological(top)) {
    if (!node->backward) continue;  // a leaf keeps its gradient
    if (!node->grad.defined()) {    // no gradient reached it: drop its saved tensors
      node->backward = nullptr;
      continue;
    }
    std::vector<bool> needs;
    for (const auto& in : node->inputs) needs.push_back(in != nullptr);
    std::vector<Tensor> grads = node->backward(node->grad, needs);
    for (size_t i = 0; i < node->inputs.size(); ++i) {
      if (!node->inputs[i]) continue;
      if (i >= grads.size() || !grads[i].defined()) {
        throw InternalError("autograd: an op's backward gave no gradient for input " + std::to_string(i));
      }
      accumulate(*node->inputs[i], std::move(grads[i]));
    }
    // Interior values are done: free their gradient, closure and inputs.
    node->grad = Tensor();
    node->backward = nullptr;
    node->inputs.clear();
  }
}

}  // namespace lmx::autograd
