// Comparing lmx's outputs with transformers' reference tensors (fixtures made by
// tools/fixtures/make_*_fixtures.py).
#pragma once

#include <filesystem>
#include <string>

#include "lmx/core/tensor.h"
#include "lmx/io/safetensors.h"

namespace lmx::testing {

// A tensor of a reference file, copied out of the mapping.
Tensor read_tensor(const io::SafetensorsFile& f, const std::string& name);
// max |got - want| / max(1, max |want|)
double relative_error(const Tensor& got, const Tensor& want);
// The folder of a model fixture of tests/data/models.
inline std::filesystem::path model_fixture(const std::string& name) {
  return std::filesystem::path(LMX_SOURCE_DIR) / "tests/data/models" / name;
}

}  // namespace lmx::testing
