// Locating ../shared/data from tests: missing data fails the test under CI (CI=true)
// with the path in the message, and skips it elsewhere.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace lmx::testing {

inline std::filesystem::path shared_data(const std::string& rel) {
  return std::filesystem::path(LMX_SOURCE_DIR) / ".." / "shared" / "data" / rel;
}

inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::strcmp(ci, "true") == 0;
}

}  // namespace lmx::testing

#define LMX_REQUIRE_SHARED(path)                                                        \
  do {                                                                                  \
    if (!std::filesystem::exists(path)) {                                               \
      if (::lmx::testing::in_ci()) FAIL() << "missing shared test data: " << (path);   \
      GTEST_SKIP() << "shared test data not found: " << (path);                        \
    }                                                                                   \
  } while (0)
