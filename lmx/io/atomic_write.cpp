#include "lmx/io/atomic_write.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <string>

#include "lmx/base/error.h"

namespace lmx::io {
namespace fs = std::filesystem;
namespace {

void fsync_path(const fs::path& p, int flags) {
  const int fd = ::open(p.empty() ? "." : p.c_str(), flags | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// A fresh sibling of `target`: ".NAME.lmx-TAG.PID.RANDOM".
fs::path sibling(const fs::path& target, const char* tag) {
  std::random_device rd;
  std::string name(1, '.');  // appended piecewise: g++ 12 warns (-Wrestrict) on "." + s
  name += target.filename().string();
  name += ".lmx-";
  name += tag;
  name += '.';
  name += std::to_string(::getpid());
  name += '.';
  name += std::to_string(rd());
  return target.parent_path() / name;
}

}  // namespace

AtomicFile::AtomicFile(const std::filesystem::path& target) : target_(target) {
  refuse_non_regular();
  std::random_device rd;
  for (int attempt = 0; attempt < 16; ++attempt) {
    tmp_ = target;
    tmp_ += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd());
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ >= 0) return;
    if (errno != EEXIST) break;
  }
  fail("cannot create a temporary file next to");
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFile::write_all(const void* data, size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    // Bounded chunks: Linux caps a single write near 2 GiB.
    const size_t chunk = std::min<size_t>(n, size_t{1} << 30);
    const ssize_t w = ::write(fd_, p, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("cannot write");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) fail("cannot sync");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("cannot close");
  refuse_non_regular();  // again: the target may have been replaced while we wrote
  if (::rename(tmp_.c_str(), target_.c_str()) != 0) fail("cannot rename a temporary file to");
  committed_ = true;
  fsync_path(target_.parent_path(), O_RDONLY | O_DIRECTORY);  // the rename itself
}

void AtomicFile::refuse_non_regular() const {
  struct stat st{};
  if (::lstat(target_.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    fail("cannot inspect");
  }
  if (!S_ISREG(st.st_mode)) {
    throw IoError("refusing to replace '" + target_.string() +
                  "': it is not a regular file (a device, fifo, symlink or folder)");
  }
}

void AtomicFile::fail(const char* what) const {
  throw IoError(std::string(what) + " '" + target_.string() + "': " + std::strerror(errno));
}

void write_file_atomic(const std::filesystem::path& path, std::string_view content) {
  AtomicFile f(path);
  f.write_all(content.data(), content.size());
  f.commit();
}

void write_folder_atomic(const fs::path& target, bool replace_non_empty,
                         const std::function<void(const fs::path& staging)>& fill) {
  fs::path t = target;
  if (!t.has_filename()) t = t.parent_path();  // "out/" names "out"
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(t, ec);
  const bool exists = fs::exists(st);
  if (exists) {
    if (!fs::is_directory(st)) {
      throw IoError("refusing to replace '" + t.string() + "': it is not a folder");
    }
    if (!replace_non_empty && !fs::is_empty(t, ec)) {
      throw InvalidArgument("'" + t.string() +
                            "' is not empty: refusing to mix a new model with its files "
                            "(give --force to replace the folder)");
    }
  }
  if (!t.parent_path().empty()) {
    fs::create_directories(t.parent_path(), ec);
    if (ec) throw IoError("cannot create '" + t.parent_path().string() + "': " + ec.message());
  }
  const fs::path staging = sibling(t, "new");
  if (!fs::create_directory(staging, ec) || ec) {
    throw IoError("cannot create a staging folder next to '" + t.string() + "': " + ec.message());
  }
  try {
    fill(staging);
    for (const auto& e : fs::directory_iterator(staging)) {
      if (e.is_regular_file()) fsync_path(e.path(), O_RDONLY);
    }
    fsync_path(staging, O_RDONLY | O_DIRECTORY);
    if (exists) {
      if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, t.c_str(), RENAME_EXCHANGE) != 0) {
        if (errno != EINVAL && errno != ENOSYS) {
          throw IoError("cannot swap the new folder into '" + t.string() + "': " + std::strerror(errno));
        }
        // A filesystem without RENAME_EXCHANGE: move the old folder aside first. A crash
        // between the two renames leaves the old model in that sibling, never a mix.
        const fs::path old = sibling(t, "old");
        if (::rename(t.c_str(), old.c_str()) != 0) {
          throw IoError("cannot move '" + t.string() + "' aside: " + std::strerror(errno));
        }
        if (::rename(staging.c_str(), t.c_str()) != 0) {
          const int err = errno;
          ::rename(old.c_str(), t.c_str());
          throw IoError("cannot rename the new folder to '" + t.string() + "': " + std::strerror(err));
        }
        fs::remove_all(old, ec);
        fsync_path(t.parent_path(), O_RDONLY | O_DIRECTORY);
        return;
      }
    } else if (::rename(staging.c_str(), t.c_str()) != 0) {
      throw IoError("cannot rename the new folder to '" + t.string() + "': " + std::strerror(errno));
    }
  } catch (...) {
    fs::remove_all(staging, ec);
    throw;
  }
  fsync_path(t.parent_path(), O_RDONLY | O_DIRECTORY);
  if (exists) fs::remove_all(staging, ec);  // now holds the old content
}

}  // namespace lmx::io
