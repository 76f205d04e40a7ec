// Writes safetensors files: tensors streamed from the caller's memory, atomically replaced.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lmx/core/dtype.h"

namespace lmx::io {

class SafetensorsWriter {
 public:
  // Adds a tensor whose bytes the caller keeps alive until write() returns. `nbytes` must
  // equal the element count times dtype_size(dtype). Throws lmx::InvalidArgument (naming
  // the tensor) for a duplicate or reserved name, a negative dimension or a size mismatch.
  void add(
      std::string name, Dtype dtype, std::vector<int64_t> shape, const void* data, size_t nbytes);
  // Same, but the writer keeps the bytes.
  void add(std::string name, Dtype dtype, std::vector<int64_t> shape, std::vector<std::byte> bytes);

  void set_metadata(std::string key, std::string value);

  // Writes `path` through a temporary file in the same folder, renamed over `path` once
  // complete and synced: readers never see a half-written file. Tensors are laid out by
  // element size (largest first) then name, like the Python library, so with the header
  // padded to 8 bytes every tensor is aligned for its dtype. lmx::IoError on failure.
  void write(const std::filesystem::path& path) const;

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string name;
    Dtype dtype;
    std::vector<int64_t> shape;
    const std::byte* data;
    size_t nbytes;
    std::shared_ptr<const std::vector<std::byte>> owned;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace lmx::io
