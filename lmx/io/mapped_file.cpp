#include "lmx/io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "lmx/base/error.h"

namespace lmx::io {
namespace {

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

size_t page_size() {
  static const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

// Releases its range of the mapping when the last tensor wrapped over it goes.
class RangeOwner {
 public:
  RangeOwner(std::shared_ptr<const MappedFile> file, size_t offset, size_t length)
      : file_(std::move(file)), offset_(offset), length_(length) {}
  RangeOwner(const RangeOwner&) = delete;
  RangeOwner& operator=(const RangeOwner&) = delete;
  ~RangeOwner() {
    if (file_) file_->release(offset_, length_);
  }

 private:
  std::shared_ptr<const MappedFile> file_;
  size_t offset_, length_;
};

[[noreturn]] void throw_errno(const std::string& what, const std::filesystem::path& path) {
  throw IoError(what + " '" + path.string() + "': " + std::strerror(errno));
}

}  // namespace

std::shared_ptr<const MappedFile> MappedFile::open(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_errno("cannot open", path);
  FdCloser closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno("cannot stat", path);
  if (!S_ISREG(st.st_mode)) throw IoError("not a regular file: '" + path.string() + "'");
  const auto size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    return std::shared_ptr<const MappedFile>(new MappedFile(path, nullptr, 0));
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) throw_errno("cannot map", path);
  // The mapping stays valid after the descriptor is closed.
  return std::shared_ptr<const MappedFile>(
      new MappedFile(path, static_cast<const std::byte*>(p), size));
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

void MappedFile::advise(AccessHint hint, size_t offset, size_t length) const {
  if (data_ == nullptr || offset >= size_) return;
  if (length > size_ - offset) length = size_ - offset;
  // madvise wants a page-aligned start.
  const size_t page = page_size();
  const size_t start = offset / page * page;
  length += offset - start;
  int advice = MADV_NORMAL;
  switch (hint) {
    case AccessHint::normal:
      advice = MADV_NORMAL;
      break;
    case AccessHint::sequential:
      advice = MADV_SEQUENTIAL;
      break;
    case AccessHint::random:
      advice = MADV_RANDOM;
      break;
    case AccessHint::will_need:
      advice = MADV_WILLNEED;
      break;
    case AccessHint::dont_need:
      advice = MADV_DONTNEED;
      break;
  }
  (void)::madvise(const_cast<std::byte*>(data_) + start, length, advice);
}

void MappedFile::release(size_t offset, size_t length) const {
  if (data_ == nullptr || offset >= size_) return;
  length = std::min(length, size_ - offset);
  const size_t page = page_size();
  const size_t start = (offset + page - 1) / page * page;
  const size_t end = (offset + length) / page * page;
  if (end > start)
    (void)::madvise(const_cast<std::byte*>(data_) + start, end - start, MADV_DONTNEED);
}

std::shared_ptr<const void> MappedFile::range_owner(std::shared_ptr<const MappedFile> file,
                                                    size_t offset,
                                                    size_t length) {
  return std::make_shared<const RangeOwner>(std::move(file), offset, length);
}

}  // namespace lmx::io
