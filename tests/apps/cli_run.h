// Running the lmx binary from tests: lmx_run(), `lmx serve` as a child process
// (ServeProcess), a fixture that imports stories260K (../shared/data/models/stories260K, a
// llama2.c checkpoint) into a temp folder once per test process, and short stories to
// fine-tune it on (story_data).
#pragma once

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

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

inline std::string read_all(const std::filesystem::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// `lmx serve ARGS --port 0` as a child process, its stderr into `log`: port() is the port
// it announced on 127.0.0.1 within 30 s (0 when it announced none, e.g. it exited).
class ServeProcess {
 public:
  ServeProcess(std::vector<std::string> args, const std::filesystem::path& log) {
    args.insert(args.begin(), {LMX_CLI, "serve"});
    args.insert(args.end(), {"--port", "0"});
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      std::freopen(log.c_str(), "w", stderr);
      ::execv(LMX_CLI, argv.data());
      ::_exit(127);
    }
    for (int i = 0; i < 300 && pid_ > 0 && port_ == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const std::string text = read_all(log);
      const size_t at = text.find("http://127.0.0.1:");
      if (at != std::string::npos) {
        port_ = std::atoi(text.c_str() + at + 17);
      } else if (::waitpid(pid_, &status_, WNOHANG) == pid_) {
        pid_ = -1;
      }
    }
  }
  ~ServeProcess() {
    if (pid_ > 0) stop();
  }
  int port() const { return port_; }
  // SIGTERM, then the exit status (waitpid's); SIGKILL after 10 s (status -1).
  int stop() {
    if (pid_ <= 0) return status_;
    ::kill(pid_, SIGTERM);
    status_ = -1;
    for (int i = 0; i < 200 && ::waitpid(pid_, &status_, WNOHANG) == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!WIFEXITED(status_)) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      status_ = -1;
    }
    pid_ = -1;
    return status_;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int status_ = -1;
};

// A temp folder named after `name` with data/train.jsonl (120 short stories) and
// data/valid.jsonl (16), for `lmx lora --data`.
inline std::filesystem::path story_data(const std::string& name) {
  const std::filesystem::path work =
      std::filesystem::temp_directory_path() / ("lmx-cli-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::create_directories(work / "data");
  const char* names[] = {"Lily", "Tom", "Sue", "Ben"};
  const char* things[] = {"ball", "kite", "cat", "dog", "box", "cake"};
  for (const auto& [split, first, count] : {std::tuple{"train", 0, 120}, {"valid", 500, 16}}) {
    std::ofstream f(work / "data" / (std::string(split) + ".jsonl"));
    for (int i = first; i < first + count; ++i) {
      const std::string n = names[i % 4], t = things[(i / 4) % 6];
      f << "{\"text\": \"" << n << " had a " << t << ". " << n << " took the " << t << " to the park.\"}\n";
    }
  }
  return work;
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
