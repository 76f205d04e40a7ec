// The token mask against a brute-force reference (each token's bytes fed to the matcher
// on their own: no sorted walk, no skipping, no string fast path), on hand-written and
// random vocabularies, along random constrained walks whose outputs must validate with
// Python's jsonschema.
#include "lmx/generate/constrained/token_masker.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "json_validator.h"
#include "lmx/generate/constrained/json_schema_compiler.h"

namespace lmx::generate::constrained {
namespace {

using Json = nlohmann::ordered_json;

TokenMask brute_force(const GrammarMatcher& m, const TokenVocabulary& v, const MatchState& s) {
  TokenMask allowed(v.size(), 0);
  for (size_t id = 0; id < v.size(); ++id) {
    const auto i = static_cast<int32_t>(id);
    if (v.eos_ids().count(i)) {
      allowed[id] = m.can_end(s);
      continue;
    }
    if (v.bytes(i).empty()) continue;
    MatchState t = s;
    allowed[id] = m.advance(t, v.bytes(i));
  }
  return allowed;
}

std::vector<int32_t> ids_of(const TokenMask& mask) {
  std::vector<int32_t> out;
  for (size_t i = 0; i < mask.size(); ++i)
    if (mask[i]) out.push_back(static_cast<int32_t>(i));
  return out;
}

TEST(TokenMasker, HandWrittenVocabulary) {
  //                                0   1    2    3     4    5        6    7    8     9
  std::vector<std::string> bytes = {"", "{", "}", "\"", "a", "\"a\"", ":", "1", "12", "{\"a\":",
                                    "x", "1}", "\"a\":1}"};
  auto v = std::make_shared<const TokenVocabulary>(bytes, std::set<int32_t>{0});
  auto g = std::make_shared<const Grammar>(compile_json_schema(
      Json::parse(R"({"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]})"), "t"));
  auto m = std::make_shared<const GrammarMatcher>(g);
  TokenMasker masker(m, v);
  MatchState s = m->start();
  EXPECT_EQ(ids_of(*masker.mask(s)), (std::vector<int32_t>{1, 9}));
  ASSERT_TRUE(m->advance(s, "{"));
  EXPECT_EQ(ids_of(*masker.mask(s)), (std::vector<int32_t>{3, 5, 12}));
  ASSERT_TRUE(m->advance(s, "\"a\":"));
  EXPECT_EQ(ids_of(*masker.mask(s)), (std::vector<int32_t>{7, 8, 11}));
  ASSERT_TRUE(m->advance(s, "12"));
  EXPECT_EQ(ids_of(*masker.mask(s)), (std::vector<int32_t>{2, 7, 8, 11}));
  ASSERT_TRUE(m->advance(s, "}"));
  EXPECT_EQ(ids_of(*masker.mask(s)), (std::vector<int32_t>{0}));  // only EOS
}


TEST(TokenMasker, EqualsBruteForceAlongRandomWalks) {
  std::vector<testing::SchemaOutput> outputs;
  for (uint32_t seed = 1; seed <= 3; ++seed) {
    auto v = std::make_shared<const TokenVocabulary>(testing::synthetic_vocabulary(400, seed),
                                                     std::set<int32_t>{0});
    for (const std::string& text : testing::test_schemas()) {
      const Json schema = Json::parse(text);
      auto m = std::make_shared<const GrammarMatcher>(
          std::make_shared<const Grammar>(compile_json_schema(schema, "t")));
      TokenMasker masker(m, v);
      std::mt19937 rng(seed * 7919);
      for (int walk = 0; walk < 4; ++walk) {
        MatchState s = m->start();
        std::string out;
        bool ended = false;
        for (int step = 0; step < 400 && !ended; ++step) {
          const TokenMask mask = *masker.mask(s);
          ASSERT_EQ(mask, brute_force(*m, *v, s)) << text << " after " << out;
          const std::vector<int32_t> allowed = ids_of(mask);
          ASSERT_FALSE(allowed.empty()) << text << " after " << out;
          // Prefer text over EOS so walks grow, but end when EOS is allowed half the time.
          const int32_t pick = mask[0] && rng() % 2 ? 0 : allowed[rng() % allowed.size()];
          if (pick == 0) {
            ended = true;
          } else {
            out += v->bytes(pick);
            ASSERT_TRUE(m->advance(s, v->bytes(pick)));
          }
        }
        if (ended) outputs.push_back({schema, out});
      }
    }
  }
  EXPECT_GE(outputs.size(), 30u);
  LMX_EXPECT_VALID_OUTPUTS(outputs);
}

}  // namespace
}  // namespace lmx::generate::constrained
