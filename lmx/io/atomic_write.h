// Replacing files and folders so that a crash or an error leaves the old content or the
// new one, never a mix, and never writes through a device, fifo or symlink.
#pragma once

#include <filesystem>
#include <functional>
#include <string_view>

namespace lmx::io {

// Writes a file through a temporary sibling (same folder) that commit() fsyncs and
// renames over the target, then fsyncs the folder; the temporary is removed when
// commit() was not reached. The one way every lmx writer replaces a file. Only a
// missing target or a regular file is replaced: a device, fifo, symlink or folder at the
// target is refused (checked on open and again before the rename). lmx::IoError naming
// the target.
class AtomicFile {
 public:
  explicit AtomicFile(const std::filesystem::path& target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write_all(const void* data, size_t n);
  // fsync, close, rename.
  void commit();

 private:
  [[noreturn]] void fail(const char* what) const;
  void refuse_non_regular() const;

  std::filesystem::path target_;
  std::filesystem::path tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

// AtomicFile with the whole content at once.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

// Writes a whole folder: `fill(staging)` writes the new content into a fresh sibling
// folder, which then replaces `target` in one step (renameat2 RENAME_EXCHANGE when
// `target` exists; the old content is removed afterwards; on a filesystem without
// RENAME_EXCHANGE the old folder is first renamed aside). A crash leaves `target` holding
// the old folder or the new one (or, in that fallback's one-step window, the old one
// beside it), plus at most a leftover ".NAME.lmx-*" sibling.
// A `target` that exists and is not empty is refused (lmx::InvalidArgument naming it)
// unless `replace_non_empty`; a `target` that is not a folder is refused (lmx::IoError).
// When `fill` throws, `target` is untouched and the staging folder removed.
void write_folder_atomic(const std::filesystem::path& target, bool replace_non_empty,
                         const std::function<void(const std::filesystem::path& staging)>& fill);

}  // namespace lmx::io
