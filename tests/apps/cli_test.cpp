// The lmx binary as a user runs it: import stories260K, generate, tokenize,
// detokenize, render a template, and fail with one clear line on bad input.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "../generate/shared_data.h"
#include "lmx/core/backend.h"

namespace {

namespace fs = std::filesystem;

struct Result {
  int status;
  std::string out;
};

// Runs `lmx ARGS` with stdin from `input`; captures stdout (+ stderr when asked).
Result lmx_run(const std::string& args, const std::string& input = "", bool with_stderr = false) {
  const fs::path in = fs::temp_directory_path() / ("lmx-cli-in-" + std::to_string(::getpid()));
  std::ofstream(in) << input;
  std::string cmd = std::string(LMX_CLI) + " " + args + " < " + in.string() + (with_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  Result r{-1, ""};
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  r.status = pclose(p);
  fs::remove(in);
  return r;
}

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fs::path src = lmx::testing::shared_data("models/stories260K");
    if (!fs::exists(src / "stories260K.bin")) return;
    dir_ = fs::temp_directory_path() / ("lmx-cli-" + std::to_string(::getpid()));
    convert_ = lmx_run("convert --from-llama2c " + (src / "stories260K.bin").string() + " --tokenizer " +
                       (src / "tok512.bin").string() + " --out " + dir_.string());
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  void SetUp() override { LMX_REQUIRE_SHARED(lmx::testing::shared_data("models/stories260K/stories260K.bin")); }
  static fs::path dir_;
  static Result convert_;
};
fs::path Cli::dir_;
Result Cli::convert_;

TEST_F(Cli, ConvertThenGenerateGreedyEqualsLlama2c) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  nlohmann::json expected;
  std::ifstream(lmx::testing::shared_data("models/stories260K/expected_outputs.json")) >> expected;
  Result r = lmx_run("generate --model " + dir_.string() + " --prompt '' --max-tokens 256 --temp 0");
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(r.out, expected["greedy"]["stdout"].get<std::string>());
}

TEST_F(Cli, TokenizeAndDetokenizeRoundTrip) {
  Result ids = lmx_run("tokenize --model " + dir_.string(), "Lily saw a big, red ball.");
  ASSERT_EQ(ids.status, 0);
  EXPECT_EQ(ids.out.substr(0, 2), "1 ");  // BOS first
  Result text = lmx_run("detokenize --skip-special --model " + dir_.string(), ids.out);
  ASSERT_EQ(text.status, 0);
  EXPECT_EQ(text.out, "Lily saw a big, red ball.\n");
}

TEST_F(Cli, LogitsWritesSafetensors) {
  const fs::path out = dir_ / "logits.safetensors";
  Result r = lmx_run("logits --model " + dir_.string() + " --tokens 1,403,407 --out " + out.string());
  ASSERT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("top-5: 261"), std::string::npos) << r.out;  // greedy continues with " a"
  EXPECT_GT(fs::file_size(out), 3u * 512 * 4);
}

TEST_F(Cli, ChatReplResetsAndQuits) {
  Result r = lmx_run("chat --model " + dir_.string() + " --temp 0 --max-tokens 12",
                     "Once upon a time\n/reset\nOnce upon a time\n/quit\n");
  ASSERT_EQ(r.status, 0);
  const std::string reply = ">> , there was a little girl named Lily. She\n";
  EXPECT_EQ(r.out, reply + ">> (conversation cleared)\n" + reply + ">> ");
}

TEST_F(Cli, ChatSaveAndLoadContinueTheConversation) {
  const fs::path file = dir_ / "session.safetensors";
  const std::string opts = "chat --model " + dir_.string() + " --temp 0 --max-tokens 10";
  // One run: a turn, save, a second turn, load (back to after the first turn), the same second turn.
  Result r = lmx_run(opts, "Once upon a time\n/save " + file.string() + "\nLily\n/load " + file.string() + "\nLily\n");
  ASSERT_EQ(r.status, 0) << r.out;
  const std::string first = ">> , there was a little girl named Lily\n";
  ASSERT_EQ(r.out.rfind(first, 0), 0u) << r.out;
  const size_t saved = r.out.find("(conversation saved to ");
  const size_t loaded = r.out.find("(conversation restored from ");
  ASSERT_NE(saved, std::string::npos) << r.out;
  ASSERT_NE(loaded, std::string::npos) << r.out;
  const std::string second = r.out.substr(r.out.find(">> ", saved), loaded - r.out.find(">> ", saved));
  const std::string again = r.out.substr(r.out.find(">> ", r.out.find('\n', loaded)));
  EXPECT_EQ(again, second);  // both end with the next prompt
  // A new process resumes the saved file: its first reply is that same second turn.
  Result resumed = lmx_run(opts + " --resume " + file.string(), "Lily\n");
  ASSERT_EQ(resumed.status, 0);
  EXPECT_EQ(resumed.out, second);
  // A bad file is reported and the conversation goes on.
  Result bad = lmx_run(opts, "/load " + (dir_ / "none.safetensors").string() + "\nOnce upon a time\n", true);
  EXPECT_EQ(bad.status, 0);
  EXPECT_NE(bad.out.find("none.safetensors"), std::string::npos);
  EXPECT_NE(bad.out.find(first.substr(3)), std::string::npos) << bad.out;
}

TEST_F(Cli, ChatTemplateConfigMustBeAJsonObject) {
  for (const char* bad : {"'[1]'", "'{not json'"}) {
    Result r = lmx_run("generate --model " + dir_.string() + " --prompt hi --chat-template-config " + bad, "", true);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.out.find("--chat-template-config"), std::string::npos) << r.out;
  }
  Result ok = lmx_run("generate --model " + dir_.string() +
                      " --prompt 'Once upon a time' --max-tokens 4 --temp 0 --chat-template-config '{\"x\": 1}'");
  EXPECT_EQ(ok.status, 0);
}

TEST_F(Cli, WiredLimitIsAppliedWhileGeneratingAndRestoredAfter) {
  const std::string model = " --model " + dir_.string() + " --temp 0 --max-tokens 8 -v";
  Result r = lmx_run("generate --prompt 'Once upon a time'" + model + " --wired-limit 2M --wire-policy fixed", "", true);
  ASSERT_EQ(r.status, 0) << r.out;
  const size_t applied = r.out.find("wired memory: limit applied: 2.0 MiB");
  EXPECT_NE(applied, std::string::npos) << r.out;
  EXPECT_GT(r.out.find("wired memory: baseline restored: 0.0 MiB"), applied) << r.out;
  Result chat = lmx_run("chat" + model + " --wired-limit auto", "Once upon a time\n/quit\n", true);
  ASSERT_EQ(chat.status, 0) << chat.out;
  EXPECT_NE(chat.out.find("wired memory: limit applied: "), std::string::npos) << chat.out;
  EXPECT_NE(chat.out.find("wired memory: baseline restored"), std::string::npos) << chat.out;
  Result bad = lmx_run("generate --prompt hi" + model + " --wired-limit 12Q", "", true);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("'12Q' is not a size"), std::string::npos) << bad.out;
  Result help = lmx_run("chat --help");
  EXPECT_NE(help.out.find("--wire-policy"), std::string::npos);
}

TEST(CliErrors, BadInputGivesOneClearLineAndNonZeroExit) {
  Result r = lmx_run("generate --model /nonexistent/model --prompt hi", "", true);
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(r.out.rfind("lmx: error: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  Result t = lmx_run("template --template /nonexistent.jinja --messages /nonexistent.json", "", true);
  EXPECT_NE(t.status, 0);
  EXPECT_NE(t.out.find("/nonexistent"), std::string::npos);
  Result h = lmx_run("--help", "", true);
  EXPECT_EQ(h.status, 0);
  EXPECT_NE(h.out.find("generate"), std::string::npos);
}

// --device is checked before anything is loaded: an unknown name, and a device this build
// or machine lacks, each give one line naming the flag.
TEST(CliErrors, DeviceIsCheckedBeforeLoading) {
  for (const char* cmd : {"generate --prompt hi", "chat", "bench", "logits --tokens 1"}) {
    Result r = lmx_run(std::string(cmd) + " --model /nonexistent/model --device tpu", "", true);
    EXPECT_NE(r.status, 0) << cmd;
    EXPECT_EQ(r.out.rfind("lmx: error: --device tpu: device 'tpu' is not cpu, cuda or cuda:N", 0), 0u) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  }
  if (lmx::built_with_cuda()) GTEST_SKIP() << "built with CUDA: whether cuda:0 exists depends on the machine";
  Result r = lmx_run("bench --config ../shared/data/configs/llama-3.2-1b.json --device cuda", "", true);
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(r.out.rfind("lmx: error: --device cuda: device cuda:0 is not available in this build of lmx", 0), 0u)
      << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
}

// lmx serve as a user starts it: on 127.0.0.1, a free port (--port 0) announced on
// stderr, answers a chat completion equal to `lmx generate`, refuses a wrong key, and
// exits 0 on SIGTERM.
TEST_F(Cli, ServeAnswersOnLoopbackAndStopsOnSigterm) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  const Result generated = lmx_run("generate --model " + dir_.string() + " --prompt 'Once upon' --max-tokens 20 --temp 0");
  ASSERT_EQ(generated.status, 0);
  const fs::path log = dir_ / "serve.log";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string model = dir_.string(), err = log.string();
    std::freopen(err.c_str(), "w", stderr);
    execl(LMX_CLI, LMX_CLI, "serve", "-m", model.c_str(), "--port", "0", "--api-key", "k-123", "-t", "1",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  // The announced port, within 30 s.
  int port = 0;
  for (int i = 0; i < 300 && port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::ifstream in(log);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t at = text.find("http://127.0.0.1:");
    if (at != std::string::npos) port = std::atoi(text.c_str() + at + 17);
  }
  if (port > 0) {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(30);
    const std::string body =
        R"({"messages": [{"role": "user", "content": "Once upon"}], "max_tokens": 20, "temperature": 0})";
    const auto denied = client.Post("/v1/chat/completions", {{"Authorization", "Bearer k-124"}}, body, "application/json");
    ASSERT_TRUE(denied);
    EXPECT_EQ(denied->status, 401);
    const auto res = client.Post("/v1/chat/completions", {{"Authorization", "Bearer k-123"}}, body, "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << res->body;
    // `lmx generate` ends its output with a newline.
    EXPECT_EQ(nlohmann::json::parse(res->body)["choices"][0]["message"]["content"].get<std::string>() + "\n",
              generated.out);
  }
  kill(pid, SIGTERM);
  int status = -1;
  for (int i = 0; i < 200 && waitpid(pid, &status, WNOHANG) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!WIFEXITED(status)) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    ADD_FAILURE() << "lmx serve did not stop on SIGTERM";
  }
  ASSERT_GT(port, 0) << "lmx serve announced no port";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
