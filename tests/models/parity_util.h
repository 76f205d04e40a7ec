// Comparing lmx's outputs with transformers' reference tensors (fixtures made by
// tools/fixtures/make_*_fixtures.py).
#pragma once

#include <string>

#include "lmx/core/tensor.h"
#include "lmx/io/safetensors.h"

namespace lmx::testing {

// A tensor of a reference file, copied out of the mapping.
Tensor read_tensor(const io::SafetensorsFile& f, const std::string& name);
// max |got - want| / max(1, max |want|)
double relative_error(const Tensor& got, const Tensor& want);

}  // namespace lmx::testing
