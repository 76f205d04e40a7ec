// Running the lmx binary from tests: lmx_run() and a fixture that imports stories260K
// (../shared/data/models/stories260K, a llama2.c checkpoint) into a temp folder once per
// test process.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "../generate/shared_data.h"

namespace lmx::testing {

struct CliResult {
  int status;
  std::string out;
};

enum class Capture { out, out_and_err, err };

// Runs `lmx ARGS` with stdin from `input`; captures stdout, both, or stderr alone.
inline CliResult lmx_capture(const std::string& args, const std::string& input, Capture what) {
  const std::filesystem::path in = std::filesystem::temp_directory_path() / ("lmx-cli-in-" + std::to_string(::getpid()));
  std::ofstream(in) << input;
  const char* redirect = what == Capture::out ? " 2>/dev/null" : what == Capture::err ? " 2>&1 >/dev/null" : " 2>&1";
  std::string cmd = std::string(LMX_CLI) + " " + args + " < " + in.string() + redirect;
  FILE* p = popen(cmd.c_str(), "r");
  CliResult r{-1, ""};
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  r.status = pclose(p);
  std::filesystem::remove(in);
  return r;
}

// Captures stdout (+ stderr when asked).
inline CliResult lmx_run(const std::string& args, const std::string& input = "", bool with_stderr = false) {
  return lmx_capture(args, input, with_stderr ? Capture::out_and_err : Capture::out);
}
// Captures stderr alone.
inline CliResult lmx_stderr(const std::string& args, const std::string& input = "") {
  return lmx_capture(args, input, Capture::err);
}

// dir_: stories260K as an HF llama folder (convert_ says how the import went).
class Stories260KCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::filesystem::path src = shared_data("models/stories260K");
    if (!std::filesystem::exists(src / "stories260K.bin")) return;
    dir_ = std::filesystem::temp_directory_path() / ("lmx-cli-" + std::to_string(::getpid()));
    convert_ = lmx_run("convert --from-llama2c " + (src / "stories260K.bin").string() + " --tokenizer " +
                       (src / "tok512.bin").string() + " --out " + dir_.string());
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }
  void SetUp() override { LMX_REQUIRE_SHARED(shared_data("models/stories260K/stories260K.bin")); }
  static inline std::filesystem::path dir_;
  static inline CliResult convert_;
};

}  // namespace lmx::testing
