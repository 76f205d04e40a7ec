// Bad input found while filling docs/bad-input.md, each answered by one clear error
// (regression tests for what used to run silently).
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_run.h"

namespace {

namespace fs = std::filesystem;
using lmx::testing::CliResult;
using lmx::testing::lmx_run;

class CliBadInput : public lmx::testing::Stories260KCli {
 protected:
  // A copy of the imported model in dir_/NAME without `left_out` (the test writes it).
  static fs::path copy_model_but(const std::string& name, const std::string& left_out) {
    const fs::path model = dir_ / name;
    fs::create_directories(model);
    for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"})
      if (f != left_out) fs::copy_file(dir_ / f, model / f, fs::copy_options::overwrite_existing);
    return model;
  }
};

// A --max-tokens near INT64_MAX made the memory estimate wrap around to a few MiB: the
// generation was let through and ran without end. Now the estimate saturates and the
// request is refused before the first token (generate, and each chat turn).
TEST_F(CliBadInput, HugeMaxTokensIsRefusedBeforeGenerating) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  for (const char* n : {"4611686018427387904", "9223372036854775000", "9223372036854775807"}) {
    CliResult r = lmx_run("generate --model " + dir_.string() + " --prompt hi --max-tokens " + n, "", true);
    EXPECT_NE(r.status, 0) << n;
    EXPECT_NE(r.out.find("lmx: error: generate: not enough memory for a context of "), std::string::npos)
        << n << ": " << r.out;
  }
  CliResult chat = lmx_run("chat --model " + dir_.string() + " --max-tokens 4611686018427387904", "hi\n/quit\n", true);
  EXPECT_EQ(chat.status, 0) << chat.out;
  EXPECT_NE(chat.out.find("not enough memory for a context of"), std::string::npos) << chat.out;
  EXPECT_NE(chat.out.find("(the conversation is kept"), std::string::npos) << chat.out;
}

// max_position_embeddings <= 0 was accepted (and fed to the RoPE scaling formulas).
TEST_F(CliBadInput, NonPositiveMaxPositionEmbeddingsNamesTheField) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  const fs::path model = copy_model_but("bad-context", "config.json");
  nlohmann::json config;
  std::ifstream(dir_ / "config.json") >> config;
  config["max_position_embeddings"] = -1;
  std::ofstream(model / "config.json") << config.dump();
  CliResult r = lmx_run("generate --model " + model.string() + " --prompt hi --max-tokens 2", "", true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("config.json: field 'max_position_embeddings' must be positive"), std::string::npos) << r.out;
  fs::remove_all(model);
}

// Issue 22: a config of absurd sizes ended in std::bad_alloc ("internal error", exit 2)
// after a long time. Now: one error line at once, exit 1 (bench builds the weights the
// config asks for; generate compares them with the checkpoint first).
TEST_F(CliBadInput, AbsurdConfigSizesFailAtOnceWithOneError) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  nlohmann::json config;
  std::ifstream(dir_ / "config.json") >> config;
  for (const char* field : {"hidden_size", "intermediate_size", "vocab_size"}) {
    nlohmann::json big = config;
    big[field] = 1000000000000LL;
    const fs::path file = dir_ / (std::string("big-") + field + ".json");
    std::ofstream(file) << big.dump();
    CliResult r = lmx_run("bench --config " + file.string() + " -p 8 -g 2 -n 1", "", true);
    EXPECT_EQ(WEXITSTATUS(r.status), 1) << field << ": " << r.out;
    EXPECT_EQ(r.out.rfind("lmx: error: ", 0), 0u) << field << ": " << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    fs::remove(file);
  }
}

// Issue 22: a tokenizer.json holding a 100000-deep array crashed lmx tokenize / generate
// (stack overflow, SIGSEGV). Now an error naming the file.
TEST_F(CliBadInput, DeeplyNestedTokenizerJsonIsAnError) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  const fs::path model = copy_model_but("deep-tokenizer", "tokenizer.json");
  std::ifstream in(dir_ / "tokenizer.json");
  std::string tok((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(tok[0], '{');
  std::ofstream(model / "tokenizer.json") << "{\"junk\": " << std::string(100000, '[') << std::string(100000, ']')
                                          << ", " << tok.substr(1);
  for (const std::string& cmd : {"tokenize --model " + model.string(),
                                "generate --prompt hi --max-tokens 2 --model " + model.string()}) {
    CliResult r = lmx_run(cmd, "hi", true);
    ASSERT_TRUE(WIFEXITED(r.status)) << cmd << " died of signal " << WTERMSIG(r.status);
    EXPECT_EQ(WEXITSTATUS(r.status), 1) << cmd << ": " << r.out;
    EXPECT_NE(r.out.find((model / "tokenizer.json").string()), std::string::npos) << r.out;
  }
  fs::remove_all(model);
}

// Invalid UTF-8 input ("\xe6\xad": a character cut short) used to be replaced silently;
// it still reads as U+FFFD (as Python's errors="replace"), now with a warning naming it.
// The ids are those of the text with U+FFFD in its place.
TEST_F(CliBadInput, InvalidUtf8InputIsReportedAndReplaced) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  const std::string warning =
      "lmx: warning: the input: encode: input is not valid UTF-8 (invalid sequence at byte 2); each invalid "
      "sequence is read as U+FFFD\n";
  CliResult cut = lmx_run("tokenize --model " + dir_.string(), "ab\xe6\xad", true);
  EXPECT_EQ(cut.status, 0);
  CliResult replaced = lmx_run("tokenize --model " + dir_.string(), "ab\xef\xbf\xbd");
  EXPECT_EQ(cut.out, warning + replaced.out);
  CliResult clean = lmx_run("tokenize --model " + dir_.string(), "ab", true);
  EXPECT_EQ(clean.out.find("warning"), std::string::npos) << clean.out;
  CliResult prompt = lmx_run("generate --prompt - --max-tokens 1 --model " + dir_.string(), "ab\xe6\xad", true);
  EXPECT_EQ(prompt.status, 0);
  EXPECT_NE(prompt.out.find("lmx: warning: the prompt: encode: input is not valid UTF-8"), std::string::npos)
      << prompt.out;
}

}  // namespace
