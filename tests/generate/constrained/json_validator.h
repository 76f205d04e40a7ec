// Test helpers for constrained decoding: outputs are checked by Python's jsonschema
// package (an independent validator), and a synthetic vocabulary lets the tokenizer-less
// fixture models generate text.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "../shared_data.h"

namespace lmx::testing {

struct SchemaOutput {
  nlohmann::ordered_json schema;
  std::string output;
};

// Runs validate_json.py over the cases; "" when all are valid JSON of their schema, else
// the validator's report. Sets *missing when python3-jsonschema is absent.
inline std::string validate_outputs(const std::vector<SchemaOutput>& cases, bool* missing) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& c : cases) list.push_back({{"schema", c.schema}, {"output", c.output}});
  const auto file = std::filesystem::temp_directory_path() /
                    ("lmx-constrained-" + std::to_string(::getpid()) + ".json");
  std::ofstream(file) << list.dump();
  const std::string cmd = "python3 " + std::string(LMX_SOURCE_DIR) +
                          "/tests/generate/constrained/validate_json.py " + file.string() + " 2>&1";
  std::string report;
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[4096];
  while (p && std::fgets(buf, sizeof buf, p)) report += buf;
  const int status = p ? ::pclose(p) : -1;
  std::filesystem::remove(file);
  *missing = WIFEXITED(status) && WEXITSTATUS(status) == 2;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "" : report;
}

#define LMX_EXPECT_VALID_OUTPUTS(cases)                                                  \
  do {                                                                                   \
    bool missing_ = false;                                                               \
    const std::string report_ = ::lmx::testing::validate_outputs(cases, &missing_);      \
    if (missing_ && !::lmx::testing::in_ci()) GTEST_SKIP() << report_;                   \
    EXPECT_EQ(report_, "");                                                              \
  } while (0)

// 256 token byte strings: id 0 is EOS (no bytes), then every printable ASCII character,
// JSON pieces, UTF-8 characters and pieces of them, escapes, a control byte, and random
// strings over JSON's alphabet (seeded).
inline std::vector<std::string> synthetic_vocabulary(size_t size = 256, uint32_t seed = 7) {
  std::vector<std::string> v{""};
  for (char c = 0x20; c < 0x7F; ++c) v.emplace_back(1, c);
  for (const char* s : {"{\"", "\":", "\",\"", "\"}", "\"]", "[\"", "true", "false", "null", "12",
                        "0.5", "e+", "E-", "-0", "\\n", "\\\"", "\\u00e9", "\\u12", "\\\\",
                        "\xC3\xA9", "\xC3", "\xA9", "\xE2\x82", "\xAC", "\xE6\x97\xA5\xE6\x9C\xAC",
                        "\xF0\x9F\x98", "\x80", "\x01", "\t", "\n", "name", "age", "tags", "score",
                        "kind", "\"name\":\"", "\"v\":", "\"kids\":[", "]}", "},{", "1,", "a b",
                        "c d", "\"a\"", "\"x\"", ":{", "\"k\":\"v\"}"})
    v.emplace_back(s);
  std::mt19937 rng(seed);
  const std::string alphabet = "{}[]\":,0123456789.-+eEtrufalsn abcdxyz\\";
  while (v.size() < size) {
    std::string s;
    const int n = 2 + static_cast<int>(rng() % 4);
    for (int i = 0; i < n; ++i) s += alphabet[rng() % alphabet.size()];
    v.push_back(s);
  }
  v.resize(size);
  return v;
}

// Schemas whose values are bounded in size (strings have maxLength, arrays maxItems, the
// recursion maxItems 1), so a random-weight model's constrained output always ends.
inline const std::vector<std::string>& test_schemas() {
  static const std::vector<std::string> schemas = {
    R"({"type":"object","properties":{"name":{"type":"string","maxLength":8},"age":{"type":"integer"},"ok":{"type":"boolean"},"tags":{"type":"array","items":{"enum":["a","b","c d"]},"maxItems":3},"score":{"type":"number"},"kind":{"enum":["x",1,null,true]}},"required":["name","age","tags"],"additionalProperties":false})",
    R"({"$defs":{"n":{"type":"object","properties":{"v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/n"},"maxItems":1}},"required":["v"]}},"$ref":"#/$defs/n"})",
    R"({"type":["string","null"],"minLength":2,"maxLength":5})",
    R"({"type":"array","items":{"anyOf":[{"type":"number"},{"type":"object","properties":{"k":{"const":"v"}},"required":["k"]}]},"minItems":1,"maxItems":4})",
    R"({"type":"object","properties":{"s":{"type":"string","minLength":1,"maxLength":6},"e":{"type":"string","enum":["\u00e9t\u00e9","a\"b"]}},"required":["s","e"]})",
  };
  return schemas;
}

}  // namespace lmx::testing
