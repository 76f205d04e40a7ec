// Helpers shared by the tokenizer tests: where the data lives, and the CI rule
// (missing data fails under CI=true, is skipped otherwise).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lmx::tokenizer::test {

// ../shared/data/<rel>, resolved from the source tree.
std::filesystem::path shared_data(const std::string& rel);
// .cache/npm-tokenizers/<name> (tools/fetch_npm_tokenizers.sh puts them there).
std::filesystem::path npm_tokenizer(const std::string& name);
// tests/data/tokenizer/<rel>
std::filesystem::path test_data(const std::string& rel);
bool in_ci();
std::string read_text(const std::filesystem::path& p);
std::string join_ids(const std::vector<int32_t>& ids);

}  // namespace lmx::tokenizer::test

// Skips the test (fails it under CI=true) when `path` does not exist.
#define LMX_REQUIRE_PATH(path)                                    \
  do {                                                            \
    if (!std::filesystem::exists(path)) {                         \
      if (::lmx::tokenizer::test::in_ci()) {                      \
        FAIL() << "missing test data: " << (path).string();       \
      } else {                                                    \
        GTEST_SKIP() << "missing test data: " << (path).string(); \
      }                                                           \
    }                                                             \
  } while (0)
