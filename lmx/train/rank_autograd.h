// The collectives of a split model's training forward (lmx/train/split_training.h) as
// differentiable functions (Megatron's f and g), over the rank's Communicator:
// - sum_over_ranks (g): after a row-parallel projection, the ranks' partial sums added;
//   every rank's output, and so the gradient reaching it, is the same, which each rank's
//   partial sum takes whole (backward: the identity);
// - gradient_summed_over_ranks (f): before column-parallel projections, the input every
//   rank holds alike; each rank's gradient of it covers only its own slices, so the backward
//   adds them (an all-reduce of the gradient);
// - gather_last_over_ranks: a vocabulary-parallel head's logits joined along the last axis;
//   the backward keeps this rank's columns of the (every rank's same) gradient.
// Every rank must call them in the same order (the forwards and, through backward(), the
// gradients' all-reduces: these lie on the one residual chain, which orders them alike).
#pragma once

#include "lmx/core/autograd/variable.h"
#include "lmx/core/communicator.h"

namespace lmx::train {

autograd::Var sum_over_ranks(const autograd::Var& x, Communicator& comm);
autograd::Var gradient_summed_over_ranks(const autograd::Var& x, Communicator& comm);
autograd::Var gather_last_over_ranks(const autograd::Var& x, Communicator& comm);

}  // namespace lmx::train
