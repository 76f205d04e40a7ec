// lmx generate / chat options with mlx-lm's names, checked by their effect on stories260K:
// --stop, --logit-bias, --top-logprobs (+ --logprobs-file), presence / frequency
// penalties, XTC, --kv-bits / --kv-value-bits, the --max-tokens context warning.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli_run.h"

namespace {

namespace fs = std::filesystem;
using lmx::testing::CliResult;
using lmx::testing::lmx_run;
using lmx::testing::lmx_stderr;
using nlohmann::json;

class CliGenerationOptions : public lmx::testing::Stories260KCli {
 protected:
  std::string generate(const std::string& options) const {
    return "generate --model " + dir_.string() + " " + options;
  }
};

// The JSON lines of --top-logprobs in `text` (other lines skipped).
std::vector<json> logprob_lines(const std::string& text) {
  std::vector<json> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] == '{') lines.push_back(json::parse(line));
  return lines;
}

std::vector<int> token_ids(const std::vector<json>& lines) {
  std::vector<int> ids;
  for (const auto& l : lines) ids.push_back(l["token"].get<int>());
  return ids;
}

bool has_repeat(const std::vector<int>& ids) { return std::set<int>(ids.begin(), ids.end()).size() != ids.size(); }

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// --stop cuts the reply before the first occurrence of any stop text; the reference is
// llama2.c's own greedy output.
TEST_F(CliGenerationOptions, StopCutsTheTextBeforeTheFirstStopString) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  json expected;
  std::ifstream(lmx::testing::shared_data("models/stories260K/expected_outputs.json")) >> expected;
  const std::string full = expected["greedy"]["stdout"].get<std::string>();
  const std::string opts = "--prompt '' --max-tokens 256 --temp 0";
  CliResult one = lmx_run(generate(opts + " --stop Lily"));
  ASSERT_EQ(one.status, 0);
  ASSERT_NE(full.find("Lily"), std::string::npos);
  EXPECT_EQ(one.out, full.substr(0, full.find("Lily")) + "\n");
  // Two stop texts: the earlier occurrence wins, whichever order they are given in.
  CliResult two = lmx_run(generate(opts + " --stop Lily --stop ' girl'"));
  ASSERT_EQ(two.status, 0);
  EXPECT_EQ(two.out, full.substr(0, full.find(" girl")) + "\n");
  // A stop text spanning a line break (held back while it may still match).
  const size_t nl = full.find(".\nLily");
  ASSERT_NE(nl, std::string::npos);
  CliResult multi = lmx_run(generate(opts + " --stop '.\nLily'"));
  EXPECT_EQ(multi.out, full.substr(0, nl) + "\n");
  CliResult empty = lmx_run(generate(opts + " --stop ''"), "", true);
  EXPECT_NE(empty.status, 0);
  EXPECT_EQ(empty.out, "lmx: error: --stop: the stop text is empty (it would stop before the first token)\n");
}

// Greedy decoding picks the most likely token: its logprob is the first alternative's,
// alternatives come most likely first, their probabilities sum to at most 1, and the
// tokens' texts make up the printed reply. --logprobs-file gets the same lines.
TEST_F(CliGenerationOptions, GreedyTokensHaveTheLargestLogprob) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  const fs::path file = dir_ / "logprobs.jsonl";
  const std::string opts = "--prompt 'Once upon a time' --max-tokens 24 --temp 0 --top-logprobs 5";
  CliResult to_stderr = lmx_stderr(generate(opts));
  ASSERT_EQ(to_stderr.status, 0) << to_stderr.out;
  CliResult to_file = lmx_run(generate(opts + " --logprobs-file " + file.string()));
  ASSERT_EQ(to_file.status, 0) << to_file.out;
  const std::vector<json> lines = logprob_lines(to_stderr.out);
  ASSERT_EQ(lines.size(), 24u) << to_stderr.out;
  EXPECT_EQ(logprob_lines(read_file(file)), lines);
  std::string text;
  for (const auto& l : lines) {
    const auto& top = l["top_logprobs"];
    ASSERT_EQ(top.size(), 5u) << l;
    EXPECT_EQ(top[0]["token"], l["token"]) << l;
    EXPECT_EQ(top[0]["logprob"].get<double>(), l["logprob"].get<double>()) << l;
    EXPECT_LE(l["logprob"].get<double>(), 0.0);
    double mass = 0;
    for (size_t i = 0; i < top.size(); ++i) {
      mass += std::exp(top[i]["logprob"].get<double>());
      if (i > 0) {
        EXPECT_LE(top[i]["logprob"].get<double>(), top[i - 1]["logprob"].get<double>()) << l;
      }
    }
    EXPECT_LE(mass, 1.0 + 1e-5) << l;
    EXPECT_GT(mass, 0.0);
    text += l["text"].get<std::string>();
  }
  EXPECT_EQ(text + "\n", to_file.out);
  // --top-logprobs 0: the token's logprob alone.
  CliResult bare = lmx_stderr(generate("--prompt 'Once upon a time' --max-tokens 3 --temp 0 --top-logprobs 0"));
  const std::vector<json> bare_lines = logprob_lines(bare.out);
  ASSERT_EQ(bare_lines.size(), 3u) << bare.out;
  EXPECT_EQ(bare_lines[0]["logprob"], lines[0]["logprob"]);
  EXPECT_TRUE(bare_lines[0]["top_logprobs"].empty());
  for (const char* bad : {"--top-logprobs 21", "--top-logprobs -1", "--logprobs-file x.jsonl"}) {
    CliResult r = lmx_run(generate(std::string("--prompt hi ") + bad), "", true);
    EXPECT_NE(r.status, 0) << bad;
    EXPECT_EQ(r.out.rfind("lmx: error: --", 0), 0u) << r.out;
  }
}

// A bias of +100 makes greedy decoding repeat that token; -100 on the greedy choice
// makes the runner-up win. Ids outside the vocabulary and malformed pairs are refused
// naming the option.
TEST_F(CliGenerationOptions, LogitBiasSteersGreedyDecoding) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  const std::string opts = "--prompt 'Once upon a time' --max-tokens 8 --temp 0 --top-logprobs 2";
  CliResult forced = lmx_stderr(generate(opts + " --logit-bias 300=100"));
  ASSERT_EQ(forced.status, 0) << forced.out;
  EXPECT_EQ(token_ids(logprob_lines(forced.out)), std::vector<int>(8, 300)) << forced.out;
  CliResult plain = lmx_stderr(generate(opts));
  const std::vector<json> first = logprob_lines(plain.out);
  ASSERT_EQ(first.size(), 8u) << plain.out;
  const int greedy = first[0]["token"].get<int>();
  const int runner_up = first[0]["top_logprobs"][1]["token"].get<int>();
  CliResult banned = lmx_stderr(generate(opts + " --logit-bias " + std::to_string(greedy) + "=-100"));
  const std::vector<json> second = logprob_lines(banned.out);
  ASSERT_FALSE(second.empty()) << banned.out;
  EXPECT_EQ(second[0]["token"].get<int>(), runner_up);
  // Repeated flags add up: +60 twice forces the token as +100 does.
  CliResult twice = lmx_stderr(generate(opts + " --logit-bias 300=60 --logit-bias 300=60"));
  EXPECT_EQ(token_ids(logprob_lines(twice.out)), std::vector<int>(8, 300)) << twice.out;

  CliResult outside = lmx_run(generate("--prompt hi --logit-bias 512=1"), "", true);
  EXPECT_NE(outside.status, 0);
  EXPECT_EQ(outside.out,
            "lmx: error: --logit-bias '512=1': token id 512 is outside the model's vocabulary [0, 512)\n");
  for (const char* bad : {"x=1", "5", "5=", "-1=2", "5=nan", "5=1e99", "99999999999=1"}) {
    CliResult r = lmx_run(generate(std::string("--prompt hi --logit-bias '") + bad + "'"), "", true);
    EXPECT_NE(r.status, 0) << bad;
    EXPECT_EQ(r.out, "lmx: error: --logit-bias '" + std::string(bad) + "': expected TOKEN_ID=BIAS, e.g. 42=-100\n");
  }
}

// A huge presence or frequency penalty over a window longer than the reply forbids any
// token the reply already holds; without it, greedy stories260K repeats itself.
TEST_F(CliGenerationOptions, PresenceAndFrequencyPenaltiesForbidRepeats) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  const std::string opts = "--prompt 'Once upon a time' --max-tokens 30 --temp 0 --top-logprobs 0";
  const std::vector<int> plain = token_ids(logprob_lines(lmx_stderr(generate(opts)).out));
  ASSERT_EQ(plain.size(), 30u);
  ASSERT_TRUE(has_repeat(plain));
  for (const std::string penalty : {"--presence-penalty 1000 --presence-context-size 64",
                                    "--frequency-penalty 1000 --frequency-context-size 64"}) {
    CliResult r = lmx_stderr(generate(opts + " " + penalty));
    ASSERT_EQ(r.status, 0) << r.out;
    const std::vector<int> ids = token_ids(logprob_lines(r.out));
    ASSERT_EQ(ids.size(), 30u) << penalty;
    EXPECT_FALSE(has_repeat(ids)) << penalty;
    // A window of 0 tokens: no penalty at all.
    const std::string off = penalty.substr(0, penalty.rfind(' ')) + " 0";
    EXPECT_EQ(token_ids(logprob_lines(lmx_stderr(generate(opts + " " + off)).out)), plain) << off;
  }
  CliResult bad = lmx_run(generate("--prompt hi --frequency-context-size -2"), "", true);
  EXPECT_EQ(bad.out, "lmx: error: --frequency-context-size must be >= 0, got -2\n");
}

// XTC at probability 1: whenever two or more tokens are at least --xtc-threshold likely,
// all of them but the least likely are excluded (the newline and EOS tokens never are).
// The logprobs are those before the exclusion, so each step can be checked.
TEST_F(CliGenerationOptions, XtcExcludesTheTopChoices) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  const double threshold = 0.1;
  const std::set<int> never_excluded = {2, 13, 410};  // </s>, "\n" as tok512 encodes it: "▁", <0x0A>
  CliResult r = lmx_stderr(generate("--prompt 'Once upon a time' --max-tokens 40 --temp 1 --seed 7 --top-logprobs 20 "
                                 "--xtc-probability 1 --xtc-threshold 0.1"));
  ASSERT_EQ(r.status, 0) << r.out;
  const std::vector<json> lines = logprob_lines(r.out);
  ASSERT_FALSE(lines.empty());
  int fired = 0;
  for (const auto& l : lines) {
    std::vector<int> above;  // most likely first
    for (const auto& t : l["top_logprobs"])
      if (t["logprob"].get<double>() > std::log(threshold)) above.push_back(t["token"].get<int>());
    if (above.size() < 2) continue;
    ++fired;
    const int token = l["token"].get<int>();
    for (size_t i = 0; i + 1 < above.size(); ++i) {
      if (!never_excluded.count(above[i])) {
        EXPECT_NE(token, above[i]) << l;
      }
    }
  }
  EXPECT_GT(fired, 0) << "no step had two tokens above the threshold: the test checks nothing";
  CliResult bad = lmx_run(generate("--prompt hi --xtc-probability 0.5 --xtc-threshold 0.7"), "", true);
  EXPECT_EQ(bad.out.rfind("lmx: error: --xtc-threshold must be in (0, 0.5]", 0), 0u) << bad.out;
}

// KV cache bits: each bad value is refused naming its option, before the model loads.
TEST_F(CliGenerationOptions, KvBitsErrorsNameTheOption) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--kv-bits 7", "--kv-bits 7 is not one of 2, 3, 4, 5, 6, 8"},
      {"--kv-bits 4 --kv-value-bits 1", "--kv-value-bits 1 is not one of 2, 3, 4, 5, 6, 8"},
      {"--kv-value-bits 4", "--kv-value-bits needs --kv-bits"},
      {"--kv-bits 4 --kv-group-size 48", "--kv-group-size 48 is not 32, 64 or 128"},
      {"--kv-bits four", "Could not convert: --kv-bits = four"},
  };
  for (const auto& [opts, message] : cases) {
    for (const char* cmd : {"generate --prompt hi", "chat"}) {
      CliResult r = lmx_run(std::string(cmd) + " --model /nonexistent/model " + opts, "", true);
      EXPECT_NE(r.status, 0) << opts;
      EXPECT_NE(r.out.find(message), std::string::npos) << cmd << " " << opts << ": " << r.out;
    }
  }
}

// Separate key and value bits reach the cache: the prompt cache written with
// --kv-bits 8 --kv-value-bits 4 holds 8-bit keys and 4-bit values (packed uint32 words:
// head_dim * bits / 32 per row). stories260K's head_dim (8) is too small to quantize,
// so the cache is written by a model of head_dim 32: the qwen3 fixture with a byte
// tokenizer.
TEST_F(CliGenerationOptions, KvValueBitsQuantizeValuesSeparately) {
  const fs::path fixture = fs::path("tests/data/models/qwen3");
  ASSERT_TRUE(fs::exists(fixture / "model.safetensors"));
  const fs::path model = dir_ / "qwen3-bytes";
  fs::create_directories(model);
  fs::copy_file(fixture / "config.json", model / "config.json", fs::copy_options::overwrite_existing);
  fs::copy_file(fixture / "model.safetensors", model / "model.safetensors", fs::copy_options::overwrite_existing);
  // A byte-level tokenizer over the 256-token vocabulary: token i is byte i.
  json vocab = json::object();
  for (int i = 0; i < 256; ++i) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", i);
    vocab[name] = i;
  }
  json tok = {{"version", "1.0"},
              {"added_tokens", json::array()},
              {"normalizer", nullptr},
              {"pre_tokenizer", nullptr},
              {"post_processor", nullptr},
              {"decoder", {{"type", "ByteFallback"}}},
              {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}, {"byte_fallback", true}}}};
  std::ofstream(model / "tokenizer.json") << tok.dump();
  const fs::path cache = dir_ / "qwen3-kv.safetensors";
  CliResult r = lmx_run("cache-prompt --model " + model.string() + " --prompt 'Once upon a time' --kv-bits 8 "
                        "--kv-value-bits 4 --kv-group-size 32 --prompt-cache-file " + cache.string(),
                        "", true);
  ASSERT_EQ(r.status, 0) << r.out;
  const std::string bytes = read_file(cache);
  ASSERT_GT(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  const json header = json::parse(bytes.substr(8, n));
  // Layer 0's state: keys "0.0.*" and values "0.1.*" (packed words, scales, biases).
  ASSERT_TRUE(header.contains("0.0.0") && header.contains("0.1.0")) << header.dump();
  EXPECT_EQ(header["0.0.0"]["dtype"], "U32");
  EXPECT_EQ(header["0.0.0"]["shape"].back().get<int>(), 32 * 8 / 32);
  EXPECT_EQ(header["0.1.0"]["shape"].back().get<int>(), 32 * 4 / 32);
  fs::remove_all(model);
  fs::remove(cache);
}

// A warning (not an error) when the prompt plus --max-tokens passes
// max_position_embeddings (512 for stories260K); none within it.
TEST_F(CliGenerationOptions, MaxTokensPastTheContextWarns) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  CliResult past = lmx_stderr(generate("--prompt 'Once upon a time' --max-tokens 600 --temp 0 --stop Lily"));
  EXPECT_EQ(past.status, 0);
  EXPECT_EQ(past.out, "lmx: warning: --max-tokens 600 with 5 prompt tokens passes the model's context of 512 tokens "
                      "(max_position_embeddings in config.json): output past it may degrade\n");
  CliResult within = lmx_stderr(generate("--prompt 'Once upon a time' --max-tokens 500 --temp 0 --stop Lily"));
  EXPECT_EQ(within.status, 0);
  EXPECT_EQ(within.out, "");
  CliResult chat = lmx_run("chat --model " + dir_.string() + " --max-tokens 1000", "", true);
  EXPECT_NE(chat.out.find("lmx: warning: --max-tokens 1000 with 0 prompt tokens passes"), std::string::npos)
      << chat.out;
}

// chat takes the same options: each turn stops at --stop, and --top-logprobs writes one
// line per generated token.
TEST_F(CliGenerationOptions, ChatStopsAndWritesLogprobs) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  const fs::path file = dir_ / "chat-logprobs.jsonl";
  CliResult r = lmx_run("chat --model " + dir_.string() + " --temp 0 --max-tokens 12 --stop ' girl' --top-logprobs 1 "
                        "--logprobs-file " + file.string(),
                        "Once upon a time\n/quit\n");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out, ">> , there was a little\n>> ");
  const std::vector<json> lines = logprob_lines(read_file(file));
  // ", there was a little g" (the stop text " girl" ends inside token 6's text " g"..."irl").
  ASSERT_GE(lines.size(), 6u);
  std::string text;
  for (const auto& l : lines) text += l["text"].get<std::string>();
  EXPECT_EQ(text.rfind(", there was a little", 0), 0u) << text;
  EXPECT_NE(text.find(" girl"), std::string::npos) << text;
}

}  // namespace
