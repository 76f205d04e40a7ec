// Bad input found while filling docs/bad-input.md, each answered by one clear error
// (regression tests for what used to run silently).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_run.h"

namespace {

namespace fs = std::filesystem;
using lmx::testing::CliResult;
using lmx::testing::lmx_run;

using CliBadInput = lmx::testing::Stories260KCli;

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
  const fs::path model = dir_ / "bad-context";
  fs::create_directories(model);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "model.safetensors"})
    fs::copy_file(dir_ / f, model / f, fs::copy_options::overwrite_existing);
  nlohmann::json config;
  std::ifstream(dir_ / "config.json") >> config;
  config["max_position_embeddings"] = -1;
  std::ofstream(model / "config.json") << config.dump();
  CliResult r = lmx_run("generate --model " + model.string() + " --prompt hi --max-tokens 2", "", true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("config.json: field 'max_position_embeddings' must be positive"), std::string::npos) << r.out;
  fs::remove_all(model);
}

}  // namespace
