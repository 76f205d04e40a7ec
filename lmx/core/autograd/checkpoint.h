// Gradient (activation) checkpointing: a piece of the forward whose intermediate values
// are not kept. checkpoint(fn, inputs) runs fn once without recording and keeps only the
// inputs' values; when the backward reaches its output, it runs fn again, recording, on
// fresh leaves holding those values, back-propagates the output's gradient through that
// second tape and hands the leaves' gradients on as the inputs' gradients. Memory: the
// inputs of each checkpointed piece plus one piece's tape at a time, for one more
// forward of each piece. fn must compute the same values both times (a random draw
// inside must replay the same stream) and reach its trainable tensors only through
// `inputs`.
#pragma once

#include <functional>
#include <vector>

#include "lmx/core/autograd/variable.h"

namespace lmx::autograd {

using CheckpointFn = std::function<Var(const std::vector<Var>& inputs)>;

// fn(inputs) with its tape dropped and rebuilt in the backward. Outside a GradScope, or
// when no input requires a gradient, it is just fn(inputs).
Var checkpoint(const CheckpointFn& fn, const std::vector<Var>& inputs);

}  // namespace lmx::autograd
