// Read-only memory mapping of a whole file, shared by everything that views into it.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>

namespace lmx::io {

// How the kernel should expect the mapping to be read (madvise).
enum class AccessHint { normal, sequential, random, will_need, dont_need };

class MappedFile {
 public:
  // Maps `path` read-only. Throws lmx::IoError naming the file when it cannot be opened or
  // mapped. An empty file gives an empty mapping (data() == nullptr, size() == 0).
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

  // Hint for the byte range [offset, offset + length) (clamped to the file); best effort:
  // failures are ignored because they never change what the bytes read.
  void advise(AccessHint hint, size_t offset = 0, size_t length = static_cast<size_t>(-1)) const;

  // Drops the pages wholly inside [offset, offset + length) from this process's resident
  // memory (MADV_DONTNEED; pages shared with neighbouring bytes stay). The bytes stay
  // readable: a later read faults them back in from the page cache or the file.
  void release(size_t offset, size_t length) const;

  // An owner handle for a tensor wrapped over [offset, offset + length) of `file`: keeps the
  // mapping alive, and when the last copy goes (the tensor was converted, repacked or
  // dropped) releases that range, so a weight held elsewhere is not resident twice.
  static std::shared_ptr<const void> range_owner(std::shared_ptr<const MappedFile> file,
                                                 size_t offset,
                                                 size_t length);

 private:
  MappedFile(std::filesystem::path path, const std::byte* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}

  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace lmx::io
