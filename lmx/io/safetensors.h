// safetensors files: zero-copy reading over mmap. Format: 8-byte little-endian header
// length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, ...,
// "__metadata__": {str: str}}, then the data section; offsets are relative to its start.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lmx/core/dtype.h"

namespace lmx::io {

class MappedFile;

// One tensor of a safetensors file: a raw view into the file's bytes.
struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::f32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;  // first byte, inside the owner's memory
  size_t nbytes = 0;                // == numel * dtype_size(dtype)
  uint64_t file_offset = 0;         // of the first byte, from the start of the file
  // False when `data` is not a multiple of dtype_size(dtype): the bytes must be copied
  // before they are read as that type.
  bool aligned = true;

  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Maps and parses `path`. lmx::IoError when it cannot be read; lmx::FormatError naming
  // the file and the tensor or field for every malformed header.
  static SafetensorsFile open(const std::filesystem::path& path);

  // Parses a whole file already in memory. `name` is used in error messages; `owner` keeps
  // `bytes` alive and is handed on to callers through owner() (may be null when the caller
  // guarantees the lifetime, e.g. a fuzz target).
  static SafetensorsFile parse(std::span<const std::byte> bytes,
                               std::string name,
                               std::shared_ptr<const void> owner = nullptr);

  // The file as given to open() (or the name given to parse()).
  const std::string& name() const { return name_; }
  // Tensors in the order of their data in the file.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // nullptr when no tensor has that name.
  const TensorInfo* find(std::string_view tensor_name) const;
  // Throws lmx::InvalidArgument naming the tensor and the file when absent.
  const TensorInfo& at(std::string_view tensor_name) const;
  bool contains(std::string_view tensor_name) const { return find(tensor_name) != nullptr; }
  size_t size() const { return tensors_.size(); }

  // Keeps every TensorInfo::data pointer valid; share it with whatever wraps them.
  const std::shared_ptr<const void>& owner() const { return owner_; }
  // The mapping behind open(); null for parse().
  const std::shared_ptr<const MappedFile>& mapping() const { return mapping_; }

  // Size of the JSON header, for diagnostics and tests.
  uint64_t header_size() const { return header_size_; }

 private:
  std::string name_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string_view, size_t> index_;  // views into tensors_[i].name
  std::map<std::string, std::string> metadata_;
  std::shared_ptr<const void> owner_;
  std::shared_ptr<const MappedFile> mapping_;
  uint64_t header_size_ = 0;

  void build_index();

 public:
  SafetensorsFile() = default;
  // Moving keeps the TensorInfo objects in place, so the name index stays valid.
  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
};

// Largest JSON header accepted (the Python library uses the same cap).
inline constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

}  // namespace lmx::io
