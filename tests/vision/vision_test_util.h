// Helpers of the vision tests: fixture paths and pixel comparison.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "lmx/vision/image.h"

namespace lmx::vision::testing {

inline std::filesystem::path vision_data(const std::string& rel) {
  return std::filesystem::path(LMX_SOURCE_DIR) / "tests/data/vision" / rel;
}

// Every pixel equal; the message names the first that differs.
inline ::testing::AssertionResult same_pixels(const Image& got, const Image& want) {
  if (got.width != want.width || got.height != want.height) {
    return ::testing::AssertionFailure() << "size " << got.width << "x" << got.height
                                         << " != " << want.width << "x" << want.height;
  }
  int mismatches = 0;
  size_t first = 0;
  for (size_t i = 0; i < got.rgb.size(); ++i) {
    if (got.rgb[i] != want.rgb[i] && mismatches++ == 0) first = i;
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  size_t px = first / 3;
  return ::testing::AssertionFailure()
         << mismatches << " bytes differ; first at x=" << px % got.width << " y=" << px / got.width
         << " channel " << first % 3 << ": " << int(got.rgb[first]) << " != " << int(want.rgb[first]);
}

}  // namespace lmx::vision::testing
