// Shared helpers of the chat tests: fixture paths, JSON loading, the fixed clock.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace lmx::chat::testing {

inline std::filesystem::path source_dir() { return LMX_SOURCE_DIR; }
inline std::filesystem::path fixture_dir() { return source_dir() / "tests" / "data" / "chat"; }
inline std::filesystem::path corpus_dir() { return source_dir() / ".." / "shared" / "data" / "chat-templates"; }

// Shared data (../shared/data) is published by others and lives beside the checkout:
// without it a test skips, except under CI where it fails naming the path.
#define LMX_REQUIRE_SHARED(path)                                         \
  do {                                                                   \
    if (!std::filesystem::exists(path)) {                                \
      if (std::getenv("CI")) FAIL() << "missing shared data: " << (path); \
      GTEST_SKIP() << "missing shared data: " << (path);                 \
    }                                                                    \
  } while (0)

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) ADD_FAILURE() << "cannot open " << p;
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline nlohmann::ordered_json read_json(const std::filesystem::path& p) {
  return nlohmann::ordered_json::parse(read_text(p));
}

// The fixture generator's strftime_now date ("2026-03-14T09:26:53").
inline std::tm fixed_now(const std::string& iso) {
  std::tm tm{};
  std::sscanf(iso.c_str(), "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
              &tm.tm_sec);
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  std::time_t t = timegm(&tm);  // fills tm_wday / tm_yday
  gmtime_r(&t, &tm);
  return tm;
}

}  // namespace lmx::chat::testing
