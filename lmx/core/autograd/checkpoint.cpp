#include "lmx/core/autograd/checkpoint.h"

#include "lmx/core/autograd/grad_scope.h"

namespace lmx::autograd {

Var checkpoint(const CheckpointFn& fn, const std::vector<Var>& inputs) {
  bool any = false;
  for (const Var& v : inputs) any = any || v.requires_grad();
  if (!recording() || !any) return fn(inputs);
  Var out;
  {
    PauseRecording pause;
    out = fn(inputs);
  }
  std::vector<Tensor> values;
  for (const Var& v : inputs) values.push_back(v.value());
  std::vector<const Var*> ptrs;
  for (const Var& v : inputs) ptrs.push_back(&v);
  return Var::from_op(out.value(), ptrs, [fn, values](const Tensor& g, const std::vector<bool>& needs) {
    std::vector<Var> leaves;
    for (size_t i = 0; i < values.size(); ++i) leaves.emplace_back(values[i], needs[i]);
    {
      GradScope scope;
      Var again = fn(leaves);
      if (again.requires_grad()) backward(again, g);
    }
    std::vector<Tensor> grads(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      if (!needs[i]) continue;
      grads[i] = leaves[i].grad();
      if (!grads[i].defined()) grads[i] = Tensor::zeros(values[i].shape(), Dtype::f32, values[i].device());
    }
    return grads;
  });
}

}  // namespace lmx::autograd
