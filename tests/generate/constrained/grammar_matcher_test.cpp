// The byte-level matcher against hand-written JSON texts: what it accepts as complete
// values must validate with Python's jsonschema (independent), and what it rejects is
// listed with the reason.
#include "lmx/generate/constrained/grammar_matcher.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "json_validator.h"
#include "lmx/base/error.h"
#include "lmx/generate/constrained/json_schema_compiler.h"

namespace lmx::generate::constrained {
namespace {

using Json = nlohmann::ordered_json;

// 1: complete value; 0: a prefix of one; -1: rejected.
int match(const Json& schema, std::string_view text) {
  GrammarMatcher m(std::make_shared<const Grammar>(compile_json_schema(schema, "test")));
  MatchState s = m.start();
  if (!m.advance(s, text)) return -1;
  return m.can_end(s) ? 1 : 0;
}

struct Case {
  const char* schema;
  std::vector<std::string> complete, prefix, rejected;
};

TEST(GrammarMatcher, AcceptsValidTextsAndRejectsOthers) {
  const std::vector<Case> cases = {
      {R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},"required":["a"]})",
       {R"({"a":1})", R"({"a":-120,"b":"x"})", R"({"a":0,"b":""})"},
       {R"({"a":1,"b":"x)", R"({"a":1,)", "{"},
       {R"({"b":"x"})", R"({"b":"x","a":1})", R"({"a":1.5})", R"({"a":01})", R"({ "a":1})",
        R"({"a":1,})", R"({"a":1}x)", R"({"c":1})", "[]"}},
      {R"({"type":"string","minLength":1,"maxLength":3})",
       {"\"ab\"", "\"\xC3\xA9t\xC3\xA9\"", R"("\n\"\u00e9")", "\"\xF0\x9F\x98\x80\""},
       {"\"", "\"\xC3"},
       {"\"\"", "\"abcd\"", R"("\ud83d")", "\"\x01\"", "\"\xC3(\"", "\"\xC0\x80\"",
        "\"\xED\xA0\x80\"", R"("\x")", "\"\xF5\x80\x80\x80\""}},
      {R"({"type":"number"})",
       {"0", "-0", "1.5e+10", "12E3", "-3.25", "7"},
       {"-", "1.", "1e", "1e+"},
       {".5", "+1", "00", "1.e3", "1x", "01"}},
      {R"({"type":"integer"})", {"0", "-17", "123456789012345"}, {"-"}, {"1.0", "1e3", "1234567890123456"}},
      {R"({"enum":[1,12,"a","ab",null,{"k":[true]}]})",
       {"1", "12", "\"a\"", "\"ab\"", "null", R"({"k":[true]})"},
       {"\"", "nu", "{"},
       {"2", "\"b\"", "123", "true"}},
      {R"({"type":"array","items":{"anyOf":[{"type":"integer"},{"type":"boolean"}]},"minItems":1,"maxItems":2})",
       {"[1]", "[true,-2]"},
       {"[", "[1,"},
       {"[]", "[1,2,3]", "[1,]", "[\"a\"]"}},
      {R"({"type":["string","null"],"maxLength":2})", {"null", "\"ab\""}, {"n"}, {"\"abc\"", "1"}},
      {R"({"$defs":{"n":{"type":"object","properties":{"v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/n"}}},"required":["v"]}},"$ref":"#/$defs/n"})",
       {R"({"v":1})", R"({"v":1,"kids":[{"v":2,"kids":[{"v":3}]},{"v":4}]})"},
       {R"({"v":1,"kids":[{"v":2,"kids":[)"},
       {R"({"v":1,"kids":[{}]})", R"({"kids":[]})"}},
      {R"({"type":"object"})",
       {R"({})", R"({"x":[1,{"y":null}],"z":"s"})", R"({"a":{"b":{"c":[[]]}}})"},
       {R"({"x":)"},
       {R"({x:1})", "[]", R"({"a"})"}},
      {R"({"const":"fixed"})", {"\"fixed\""}, {"\"fix"}, {"\"fixe\"", "\"fixedd\""}},
      {R"({"type":"object","properties":{"p":{"type":"boolean"}},"additionalProperties":false})",
       {"{}", R"({"p":false})"}, {}, {R"({"q":1})"}},
  };
  std::vector<testing::SchemaOutput> accepted;
  for (const auto& c : cases) {
    const Json schema = Json::parse(c.schema);
    for (const auto& t : c.complete) {
      EXPECT_EQ(match(schema, t), 1) << c.schema << " on " << t;
      accepted.push_back({schema, t});
    }
    for (const auto& t : c.prefix) EXPECT_EQ(match(schema, t), 0) << c.schema << " on " << t;
    for (const auto& t : c.rejected) EXPECT_EQ(match(schema, t), -1) << c.schema << " on " << t;
  }
  LMX_EXPECT_VALID_OUTPUTS(accepted);
}

TEST(GrammarMatcher, JsonObjectGrammarTakesAnyObjectOnly) {
  GrammarMatcher m(std::make_shared<const Grammar>(json_object_grammar()));
  for (std::string_view ok : {R"({})", R"({"a":[1,2.5,"x",{"b":null}],"c":true})"}) {
    MatchState s = m.start();
    ASSERT_TRUE(m.advance(s, ok)) << ok;
    EXPECT_TRUE(m.can_end(s)) << ok;
  }
  for (std::string_view bad : {"[]", "1", "\"s\"", "{1:2}"}) {
    MatchState s = m.start();
    EXPECT_FALSE(m.advance(s, bad)) << bad;
  }
}

std::string error_of(const std::string& schema_text) {
  try {
    compile_json_schema(Json::parse(schema_text), "response_format.json_schema.schema");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(JsonSchemaCompiler, HostileAndUnsupportedSchemasGetClearErrors) {
  Json big_enum = {{"enum", Json::array()}};
  for (int i = 0; i < 10000; ++i) big_enum["enum"].push_back(i);
  EXPECT_NE(error_of(big_enum.dump()).find("10000 values"), std::string::npos) << error_of(big_enum.dump());
  EXPECT_NE(error_of(R"({"$ref":"#"})").find("no finite JSON value"), std::string::npos);
  EXPECT_NE(error_of(R"({"type":"object","properties":{"x":{"$ref":"#"}},"required":["x"]})")
                .find("no finite JSON value"),
            std::string::npos);
  std::string deep = R"({"type":"string"})";
  for (int i = 0; i < 100; ++i) deep = R"({"type":"array","items":)" + deep + "}";
  EXPECT_NE(error_of(deep).find("nested deeper than 64"), std::string::npos) << error_of(deep);
  EXPECT_NE(error_of(R"({"type":"string","pattern":"a+"})").find("keyword 'pattern' at #"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"oneOf":[{"type":"string"}]})").find("'oneOf'"), std::string::npos);
  EXPECT_NE(error_of(R"({"$ref":"#/$defs/missing"})").find("does not resolve"), std::string::npos);
  EXPECT_NE(error_of(R"({"type":"strin"})").find("#/type"), std::string::npos);
  EXPECT_NE(error_of(R"({"type":"array","minItems":-1})").find("minItems"), std::string::npos);
  EXPECT_NE(error_of(R"(false)").find("no value is valid"), std::string::npos);
  EXPECT_NE(error_of(R"({"type":"string","minLength":3,"maxLength":2})").find("minLength > maxLength"),
            std::string::npos);
  // A recursion with a way out compiles, and so do ignored annotations.
  EXPECT_EQ(error_of(R"({"title":"t","description":"d","type":"object","properties":{"x":{"$ref":"#"}}})"), "");
}

}  // namespace
}  // namespace lmx::generate::constrained
