// A tensor of a safetensors file as a Tensor, the one way the readers of model weights,
// prompt caches and processor outputs wrap a file's bytes.
#pragma once

#include <memory>

#include "lmx/core/tensor.h"
#include "lmx/io/safetensors.h"

namespace lmx::io {

// A view of the file's bytes (kept alive by `owner`) when they are aligned for the dtype,
// else an aligned copy: the format does not require alignment (a header of any length
// moves every tensor), and reading misaligned elements through their type is undefined
// behaviour (found by the prompt_cache fuzz target).
Tensor tensor_of(const TensorInfo& info, std::shared_ptr<const void> owner);

}  // namespace lmx::io
