#include "lmx/base/json_nesting.h"

#include <gtest/gtest.h>

#include <string>

#include "lmx/base/error.h"

namespace lmx {
namespace {

std::string nested(int depth, char open = '[', char close = ']') {
  return std::string(depth, open) + std::string(depth, close);
}

TEST(JsonNesting, CountsArraysAndObjectsTogether) {
  EXPECT_NO_THROW(check_json_nesting(nested(512), "t"));
  EXPECT_NO_THROW(check_json_nesting("{\"a\":" + nested(511) + "}", "t"));
  EXPECT_THROW(check_json_nesting(nested(513), "t"), FormatError);
  EXPECT_THROW(check_json_nesting("{\"a\":{\"b\":" + nested(511) + "}}", "t"), FormatError);
  // Siblings do not add up: only the depth counts.
  std::string wide = "[";
  for (int i = 0; i < 2000; ++i) wide += nested(100) + ",";
  wide += "1]";
  EXPECT_NO_THROW(check_json_nesting(wide, "t"));
  EXPECT_NO_THROW(check_json_nesting(nested(5), "t", 5));
  EXPECT_THROW(check_json_nesting(nested(6), "t", 5), FormatError);
}

TEST(JsonNesting, BracketsInStringsDoNotCount) {
  const std::string brackets(100000, '[');
  EXPECT_NO_THROW(check_json_nesting("{\"k\":\"" + brackets + "\"}", "t"));
  // An escaped quote does not end the string; an escaped backslash does not escape the quote.
  EXPECT_NO_THROW(check_json_nesting("[\"\\\"" + brackets + "\"]", "t"));
  EXPECT_THROW(check_json_nesting("[\"\\\\\"" + brackets + "]", "t"), FormatError);
}

TEST(JsonNesting, TheErrorNamesTheInputAndTheByte) {
  try {
    check_json_nesting("{\"a\":" + nested(100000), "config.json", 512);
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_EQ(std::string(e.what()), "config.json: JSON nested deeper than 512 levels (at byte 516)");
  }
}

}  // namespace
}  // namespace lmx
