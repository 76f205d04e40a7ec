// The entry point shared by the libFuzzer target and the deterministic mutation test:
// parse arbitrary bytes as a safetensors file and touch every tensor it reports.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "lmx/io/safetensors.h"

namespace lmx::io::testing {

// Lets lmx::FormatError / lmx::IoError escape; anything else (or a crash) is a bug.
inline size_t fuzz_safetensors_header(const uint8_t* data, size_t size) {
  auto file = SafetensorsFile::parse(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size), "fuzz");
  size_t sum = 0;
  for (const TensorInfo& t : file.tensors()) {
    // Reading the first and last byte proves the span lies inside the input (under ASan).
    if (t.nbytes > 0)
      sum += static_cast<size_t>(t.data[0]) + static_cast<size_t>(t.data[t.nbytes - 1]);
    sum += static_cast<size_t>(t.numel()) + (file.find(t.name) == &t);
  }
  return sum + file.metadata().size();
}

}  // namespace lmx::io::testing
