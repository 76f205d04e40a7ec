// Helpers shared by the io sources; not part of the public API.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace lmx::io::detail {

// Reads and parses a JSON file. lmx::IoError when unreadable, lmx::FormatError naming the
// file when the text is not JSON. `shown` is the name used in messages.
nlohmann::json read_json_file(const std::filesystem::path& path, const std::string& shown);

// True for a relative path made only of normal components separated by '/': no empty,
// "." or ".." component, no leading '/', no backslash, no control characters. Names that pass
// cannot leave the folder they are joined to.
bool is_safe_relative_path(std::string_view name);

// Writes a file through a temporary sibling renamed over the target by commit(); the
// temporary is removed when commit() was not reached. lmx::IoError naming the target.
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

  std::filesystem::path target_;
  std::filesystem::path tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

// AtomicFile with the whole content at once.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

// A short printable rendering of untrusted text for error messages.
std::string printable(std::string_view s, size_t max_len = 120);

}  // namespace lmx::io::detail
