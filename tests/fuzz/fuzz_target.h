// Shared by the libFuzzer targets in tests/fuzz (clang, -DLMX_FUZZ=ON): which exceptions
// a parser may let escape, and a scratch file for entry points that take a path.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <typeinfo>

#include <stdlib.h>

#include "lmx/base/error.h"

namespace lmx::fuzz {

[[noreturn]] inline void finding(const char* what, const char* message) {
  std::fprintf(stderr, "fuzz finding: %s: %s\n", what, message);
  std::abort();
}

// Runs `fn` on one input. An lmx::Error that describes the input (FormatError, IoError,
// InvalidArgument, ...) is the expected way to refuse it; InternalError (a broken
// invariant) and every other exception type are findings: libFuzzer keeps the input.
template <class Fn>
int guarded(Fn&& fn) {
  try {
    fn();
  } catch (const lmx::InternalError& e) {
    finding("lmx::InternalError escaped", e.what());
  } catch (const lmx::Error&) {
  } catch (const std::exception& e) {
    finding(typeid(e).name(), e.what());
  }
  return 0;
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// One file in a fresh folder under the system temp folder, rewritten for every input.
class ScratchFile {
 public:
  explicit ScratchFile(const std::string& name) {
    std::string pattern = (std::filesystem::temp_directory_path() / "lmx-fuzz-XXXXXX").string();
    if (!mkdtemp(pattern.data())) finding("scratch", "mkdtemp failed");
    dir_ = pattern;
    path_ = dir_ / name;
  }
  ~ScratchFile() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  const std::filesystem::path& write(std::string_view bytes) {
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    if (!f || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() || std::fclose(f) != 0)
      finding("scratch", path_.c_str());
    return path_;
  }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_, path_;
};

}  // namespace lmx::fuzz
