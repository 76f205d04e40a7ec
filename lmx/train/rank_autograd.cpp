#include "lmx/train/rank_autograd.h"

#include <vector>

namespace lmx::train {
namespace {

// The collectives take f32 (contiguous) tensors.
Tensor f32(const Tensor& t) { return (t.dtype() == Dtype::f32 ? t : t.to(Dtype::f32)).contiguous(); }

}  // namespace

autograd::Var sum_over_ranks(const autograd::Var& x, Communicator& comm) {
  return autograd::Var::from_op(comm.all_reduce_sum(f32(x.value())), {&x},
                                [](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{g}; });
}

autograd::Var gradient_summed_over_ranks(const autograd::Var& x, Communicator& comm) {
  Communicator* c = &comm;
  return autograd::Var::from_op(x.value(), {&x}, [c](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{c->all_reduce_sum(f32(g))};
  });
}

autograd::Var gather_last_over_ranks(const autograd::Var& x, Communicator& comm) {
  const int64_t n = x.shape().back();
  const int64_t begin = static_cast<int64_t>(comm.rank()) * n;
  return autograd::Var::from_op(comm.all_gather_last(f32(x.value())), {&x},
                                [begin, n](const Tensor& g, const std::vector<bool>&) {
                                  return std::vector<Tensor>{g.slice(g.ndim() - 1, begin, begin + n).contiguous()};
                                });
}

}  // namespace lmx::train
