// The lmx binary as a user runs it: import stories260K, generate, tokenize,
// detokenize, render a template, and fail with one clear line on bad input.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <tuple>

#include "cli_run.h"
#include "lmx/core/backend.h"

namespace {

namespace fs = std::filesystem;

using Result = lmx::testing::CliResult;
using lmx::testing::lmx_run;
using lmx::testing::ServeProcess;
using Cli = lmx::testing::Stories260KCli;

TEST_F(Cli, ConvertThenGenerateGreedyEqualsLlama2c) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  nlohmann::json expected;
  std::ifstream(lmx::testing::shared_data("models/stories260K/expected_outputs.json")) >> expected;
  Result r = lmx_run("generate --model " + dir_.string() + " --prompt '' --max-tokens 256 --temp 0");
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(r.out, expected["greedy"]["stdout"].get<std::string>());
}

// Speculative decoding with the model as its own draft: the same text as llama2.c's greedy
// decoding, and -v reports every draft kept.
TEST_F(Cli, GreedySpeculativeGenerateEqualsLlama2c) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  nlohmann::json expected;
  std::ifstream(lmx::testing::shared_data("models/stories260K/expected_outputs.json")) >> expected;
  const std::string args = "generate --model " + dir_.string() + " --draft-model " + dir_.string() +
                           " --num-draft-tokens 3 --prompt '' --max-tokens 256 --temp 0 -v";
  Result out = lmx::testing::lmx_capture(args, "", lmx::testing::Capture::out);
  ASSERT_EQ(out.status, 0);
  EXPECT_EQ(out.out, expected["greedy"]["stdout"].get<std::string>());
  Result err = lmx::testing::lmx_capture(args, "", lmx::testing::Capture::err);
  EXPECT_NE(err.out.find("draft tokens accepted (100.0%)"), std::string::npos) << err.out;
}

// `--tensor-parallel N` (issue 24): the model's heads, MLP and vocabulary split over N ranks
// (threads on the CPU) generate llama2.c's greedy text, as the whole model does; with a
// rotating KV cache (each rank gets its own of generation's kind) and in a two-turn chat
// (the caches kept across turns) the same text as the whole model. Prompt-cache files and
// saved chats hold the whole model's layout: one made by the split model continues in the
// whole model and the other way round, as the whole model's own file does. Sizes the ranks
// do not divide are refused by name; `bench --config` runs random weights split over ranks.
TEST_F(Cli, TensorParallelGenerateEqualsTheWholeModel) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  nlohmann::json expected;
  std::ifstream(lmx::testing::shared_data("models/stories260K/expected_outputs.json")) >> expected;
  for (const char* ranks : {"2", "4"}) {
    Result r = lmx_run("generate --model " + dir_.string() + " --tensor-parallel " + ranks +
                       " --prompt '' --max-tokens 256 --temp 0");
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(r.out, expected["greedy"]["stdout"].get<std::string>()) << ranks << " ranks";
  }
  const std::string gen = " --prompt 'Once upon a time' --max-tokens 120 --temp 0 --max-kv-size 48";
  Result whole = lmx_run("generate --model " + dir_.string() + gen);
  Result split = lmx_run("generate --model " + dir_.string() + " --tensor-parallel 2" + gen);
  ASSERT_EQ(whole.status, 0) << whole.out;
  ASSERT_EQ(split.status, 0) << split.out;
  EXPECT_EQ(split.out, whole.out);
  const std::string turns = "Tell me a story\nAnd then?\n/quit\n";
  Result chat_whole = lmx_run("chat --model " + dir_.string() + " --temp 0 --max-tokens 20", turns);
  Result chat_split = lmx_run("chat --model " + dir_.string() + " --temp 0 --max-tokens 20 --tensor-parallel 2", turns);
  ASSERT_EQ(chat_split.status, 0) << chat_split.out;
  EXPECT_EQ(chat_split.out, chat_whole.out);
  // Saved chats: the split model's, resumed whole, against the whole model's own.
  for (const char* ranks : {"1", "2"}) {
    Result save = lmx_run("chat --model " + dir_.string() + " --temp 0 --max-tokens 12 --tensor-parallel " + ranks,
                          "Tell me a story\n/save " + (dir_ / (std::string("tp") + ranks + ".session")).string() +
                              "\n/quit\n");
    ASSERT_EQ(save.status, 0) << save.out;
  }
  const std::string resume = " --temp 0 --max-tokens 20 --resume ";
  Result resumed_whole = lmx_run("chat --model " + dir_.string() + resume + (dir_ / "tp1.session").string(), "And then?\n/quit\n");
  Result resumed_split = lmx_run("chat --model " + dir_.string() + resume + (dir_ / "tp2.session").string(), "And then?\n/quit\n");
  ASSERT_EQ(resumed_whole.status, 0) << resumed_whole.out;
  EXPECT_EQ(resumed_split.out, resumed_whole.out);
  Result resumed_into_split = lmx_run("chat --model " + dir_.string() + " --tensor-parallel 2" + resume +
                                      (dir_ / "tp1.session").string(), "And then?\n/quit\n");
  EXPECT_EQ(resumed_into_split.out, resumed_whole.out);
  // Prompt-cache files (lmx cache-prompt) made whole and split, continued whole and split.
  std::map<std::string, std::string> continued;  // "<made by> -> <continued by>" -> text
  for (const char* made : {"1", "2"}) {
    const std::string file = (dir_ / (std::string("prompt") + made + ".safetensors")).string();
    Result cached = lmx_run("cache-prompt --model " + dir_.string() + " --tensor-parallel " + made +
                            " --prompt 'Once upon a time, there was a little girl' --prompt-cache-file " + file);
    ASSERT_EQ(cached.status, 0) << cached.out;
    for (const char* by : {"1", "2"}) {
      Result r = lmx_run("generate --model " + dir_.string() + " --tensor-parallel " + by + " --prompt-cache-file " +
                         file + " --prompt ' named Lily' --max-tokens 60 --temp 0");
      ASSERT_EQ(r.status, 0) << r.out;
      continued[std::string(made) + " -> " + by] = r.out;
    }
  }
  for (const auto& [how, text] : continued) EXPECT_EQ(text, continued["1 -> 1"]) << how;
  Result odd = lmx_run("generate --model " + dir_.string() + " --tensor-parallel 3 --prompt hi --max-tokens 4", "", true);
  EXPECT_NE(odd.status, 0);
  EXPECT_NE(odd.out.find("tensor parallel"), std::string::npos) << odd.out;
  Result random = lmx_run("bench --config " + (dir_ / "config.json").string() + " --tensor-parallel 2 -p 4 -g 4 -n 1 -b 2");
  ASSERT_EQ(random.status, 0) << random.out;
  EXPECT_NE(random.out.find("random weights, 2 ranks"), std::string::npos) << random.out;
  EXPECT_NE(random.out.find("tokens/s"), std::string::npos) << random.out;
  EXPECT_NE(random.out.find("tg4 x b2: "), std::string::npos) << random.out;  // batch caches split too
  Result random_odd = lmx_run("bench --config " + (dir_ / "config.json").string() + " --tensor-parallel 3 -p 4 -g 4 -n 1",
                              "", true);
  EXPECT_NE(random_odd.status, 0);
  EXPECT_NE(random_odd.out.find("not divisible by 3 ranks"), std::string::npos) << random_odd.out;
}

// `lmx bench --draft-model`: the speculative report (issue 19's benchmark). The model as its
// own draft accepts every drafted token, so the acceptance it reports is exactly 1.
TEST_F(Cli, BenchWithADraftModelReportsAcceptanceAndPredictedSpeedUp) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  Result r = lmx_run("bench --model " + dir_.string() + " --draft-model " + dir_.string() +
                     " --num-draft-tokens 3 -p 16 -g 24 -n 1 -t 1");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("speculative (greedy, 3 draft tokens): "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("acceptance 1.000"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("verify of 4 tokens"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("predicted speed-up from these costs: at 0.5 x"), std::string::npos) << r.out;
}

TEST_F(Cli, TokenizeAndDetokenizeRoundTrip) {
  Result ids = lmx_run("tokenize --model " + dir_.string(), "Lily saw a big, red ball.");
  ASSERT_EQ(ids.status, 0);
  EXPECT_EQ(ids.out.substr(0, 2), "1 ");  // BOS first
  Result text = lmx_run("detokenize --skip-special --model " + dir_.string(), ids.out);
  ASSERT_EQ(text.status, 0);
  EXPECT_EQ(text.out, "Lily saw a big, red ball.\n");
}

TEST_F(Cli, LogitsWritesSafetensors) {
  const fs::path out = dir_ / "logits.safetensors";
  Result r = lmx_run("logits --model " + dir_.string() + " --tokens 1,403,407 --out " + out.string());
  ASSERT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("top-5: 261"), std::string::npos) << r.out;  // greedy continues with " a"
  EXPECT_GT(fs::file_size(out), 3u * 512 * 4);
}

TEST_F(Cli, ChatReplResetsAndQuits) {
  Result r = lmx_run("chat --model " + dir_.string() + " --temp 0 --max-tokens 12",
                     "Once upon a time\n/reset\nOnce upon a time\n/quit\n");
  ASSERT_EQ(r.status, 0);
  const std::string reply = ">> , there was a little girl named Lily. She\n";
  EXPECT_EQ(r.out, reply + ">> (conversation cleared)\n" + reply + ">> ");
}

TEST_F(Cli, ChatSaveAndLoadContinueTheConversation) {
  const fs::path file = dir_ / "session.safetensors";
  const std::string opts = "chat --model " + dir_.string() + " --temp 0 --max-tokens 10";
  // One run: a turn, save, a second turn, load (back to after the first turn), the same second turn.
  Result r = lmx_run(opts, "Once upon a time\n/save " + file.string() + "\nLily\n/load " + file.string() + "\nLily\n");
  ASSERT_EQ(r.status, 0) << r.out;
  const std::string first = ">> , there was a little girl named Lily\n";
  ASSERT_EQ(r.out.rfind(first, 0), 0u) << r.out;
  const size_t saved = r.out.find("(conversation saved to ");
  const size_t loaded = r.out.find("(conversation restored from ");
  ASSERT_NE(saved, std::string::npos) << r.out;
  ASSERT_NE(loaded, std::string::npos) << r.out;
  const std::string second = r.out.substr(r.out.find(">> ", saved), loaded - r.out.find(">> ", saved));
  const std::string again = r.out.substr(r.out.find(">> ", r.out.find('\n', loaded)));
  EXPECT_EQ(again, second);  // both end with the next prompt
  // A new process resumes the saved file: its first reply is that same second turn.
  Result resumed = lmx_run(opts + " --resume " + file.string(), "Lily\n");
  ASSERT_EQ(resumed.status, 0);
  EXPECT_EQ(resumed.out, second);
  // A bad file is reported and the conversation goes on.
  Result bad = lmx_run(opts, "/load " + (dir_ / "none.safetensors").string() + "\nOnce upon a time\n", true);
  EXPECT_EQ(bad.status, 0);
  EXPECT_NE(bad.out.find("none.safetensors"), std::string::npos);
  EXPECT_NE(bad.out.find(first.substr(3)), std::string::npos) << bad.out;
}

TEST_F(Cli, ChatTemplateConfigMustBeAJsonObject) {
  for (const char* bad : {"'[1]'", "'{not json'"}) {
    Result r = lmx_run("generate --model " + dir_.string() + " --prompt hi --chat-template-config " + bad, "", true);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.out.find("--chat-template-config"), std::string::npos) << r.out;
  }
  Result ok = lmx_run("generate --model " + dir_.string() +
                      " --prompt 'Once upon a time' --max-tokens 4 --temp 0 --chat-template-config '{\"x\": 1}'");
  EXPECT_EQ(ok.status, 0);
}

TEST_F(Cli, WiredLimitIsAppliedWhileGeneratingAndRestoredAfter) {
  const std::string model = " --model " + dir_.string() + " --temp 0 --max-tokens 8 -v";
  Result r = lmx_run("generate --prompt 'Once upon a time'" + model + " --wired-limit 2M --wire-policy fixed", "", true);
  ASSERT_EQ(r.status, 0) << r.out;
  const size_t applied = r.out.find("wired memory: limit applied: 2.0 MiB");
  EXPECT_NE(applied, std::string::npos) << r.out;
  EXPECT_GT(r.out.find("wired memory: baseline restored: 0.0 MiB"), applied) << r.out;
  Result chat = lmx_run("chat" + model + " --wired-limit auto", "Once upon a time\n/quit\n", true);
  ASSERT_EQ(chat.status, 0) << chat.out;
  EXPECT_NE(chat.out.find("wired memory: limit applied: "), std::string::npos) << chat.out;
  EXPECT_NE(chat.out.find("wired memory: baseline restored"), std::string::npos) << chat.out;
  Result bad = lmx_run("generate --prompt hi" + model + " --wired-limit 12Q", "", true);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("'12Q' is not a size"), std::string::npos) << bad.out;
  Result help = lmx_run("chat --help");
  EXPECT_NE(help.out.find("--wire-policy"), std::string::npos);
}

// Issue 22: convert never mixes two models in one folder. A non-empty --out is refused
// unless --force, which swaps in a fresh folder: the old model's files (here a stale
// index naming other shards) are gone and the folder loads as the new model.
TEST_F(Cli, ConvertRefusesANonEmptyFolderAndForceReplacesIt) {
  const fs::path out = dir_ / "converted";
  fs::create_directories(out);
  std::ofstream(out / "model.safetensors.index.json")
      << R"({"weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"}})";
  std::ofstream(out / "notes.txt") << "old";
  const std::string convert = "convert --model " + dir_.string() + " --out " + out.string();
  Result refused = lmx_run(convert, "", true);
  EXPECT_NE(refused.status, 0);
  EXPECT_EQ(refused.out, "lmx: error: '" + out.string() +
                             "' is not empty: refusing to mix a new model with its files (give --force to replace "
                             "the folder)\n");
  EXPECT_TRUE(fs::exists(out / "notes.txt"));
  Result forced = lmx_run(convert + " --force", "", true);
  ASSERT_EQ(forced.status, 0) << forced.out;
  EXPECT_FALSE(fs::exists(out / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(out / "notes.txt"));
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  std::vector<std::string> leftovers;
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.path().filename().string().find(".lmx-") != std::string::npos) leftovers.push_back(e.path());
  EXPECT_TRUE(leftovers.empty()) << leftovers.front();
  const std::string gen = " --prompt 'Once upon a time' --max-tokens 8 --temp 0";
  Result a = lmx_run("generate --model " + out.string() + gen);
  Result b = lmx_run("generate --model " + dir_.string() + gen);
  ASSERT_EQ(a.status, 0);
  EXPECT_EQ(a.out, b.out);
  fs::remove_all(out);
}

// Issue 22: --out onto something that is not a regular file is refused, naming it.
TEST_F(Cli, WritesRefuseToReplaceFifosAndSymlinks) {
  const fs::path fifo = dir_ / "out.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  Result r = lmx_run("logits --model " + dir_.string() + " --tokens 1,403 --out " + fifo.string(), "", true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("lmx: error: refusing to replace '" + fifo.string() + "': it is not a regular file"),
            std::string::npos)
      << r.out;
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(fifo)));
  const fs::path link = dir_ / "cache.link";
  fs::create_symlink(dir_ / "config.json", link);
  Result c = lmx_run("cache-prompt --model " + dir_.string() + " --prompt hi --prompt-cache-file " + link.string(),
                     "", true);
  EXPECT_NE(c.status, 0);
  EXPECT_NE(c.out.find("refusing to replace '" + link.string() + "'"), std::string::npos) << c.out;
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(link)));
  fs::remove(fifo);
  fs::remove(link);
}

// Runs `lmx ARGS` with stdout on a pipe whose read end is already closed; returns the
// exit status and stderr.
Result lmx_run_stdout_closed(const std::string& args) {
  int fds[2];
  if (::pipe(fds) != 0) return {-1, "pipe failed"};
  ::close(fds[0]);
  const fs::path err = fs::temp_directory_path() / ("lmx-cli-err-" + std::to_string(::getpid()));
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    const int e = ::open(err.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    ::dup2(e, STDERR_FILENO);
    ::dup2(e, STDIN_FILENO);  // an empty file
    ::signal(SIGPIPE, SIG_DFL);
    ::execl("/bin/sh", "sh", "-c", (std::string(LMX_CLI) + " " + args).c_str(), nullptr);
    ::_exit(127);
  }
  ::close(fds[1]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::ifstream in(err);
  Result r{status, std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>())};
  fs::remove(err);
  return r;
}

// Issue 22: a failed write to stdout is an error (one line, non-zero), not a success.
TEST_F(Cli, StdoutWriteErrorsAreReported) {
  for (const std::string& args : {"generate --model " + dir_.string() + " --prompt 'Once upon a time' --max-tokens 64",
                                 "tokenize --model " + dir_.string()}) {
    Result r = lmx_run_stdout_closed(args);
    ASSERT_TRUE(WIFEXITED(r.status)) << args << " died of signal " << WTERMSIG(r.status);
    EXPECT_EQ(WEXITSTATUS(r.status), 1) << args;
    EXPECT_EQ(r.out, "lmx: error: cannot write to stdout: Broken pipe\n") << args;
  }
}

// Issue 22: a prompt cache is matched to the weights, not to the --model text: the same
// model named another way is accepted, other weights at the same path are refused.
TEST_F(Cli, PromptCacheIsMatchedByTheWeightsNotThePath) {
  const fs::path model = dir_ / "cache-model";
  ASSERT_EQ(lmx_run("convert --model " + dir_.string() + " --out " + model.string()).status, 0);
  const fs::path cache = dir_ / "prompt.safetensors";
  ASSERT_EQ(lmx_run("cache-prompt --model " + model.string() + " --prompt 'Once upon a time' --prompt-cache-file " +
                    cache.string())
                .status,
            0);
  const std::string cont = " --prompt ' there' --max-tokens 6 --temp 0 --prompt-cache-file " + cache.string();
  Result same = lmx_run("generate --model " + model.string() + cont, "", true);
  ASSERT_EQ(same.status, 0) << same.out;
  Result slash = lmx_run("generate --model " + model.string() + "/" + cont, "", true);
  EXPECT_EQ(slash.status, 0) << slash.out;
  EXPECT_EQ(slash.out, same.out);
  Result relative = lmx_run("generate --model " + fs::relative(model).string() + cont, "", true);
  EXPECT_EQ(relative.status, 0) << relative.out;
  EXPECT_EQ(relative.out, same.out);
  // Other weights (bfloat16) at the same path.
  ASSERT_EQ(lmx_run("convert --force --dtype bfloat16 --model " + dir_.string() + " --out " + model.string()).status, 0);
  Result other = lmx_run("generate --model " + model.string() + cont, "", true);
  EXPECT_NE(other.status, 0);
  EXPECT_NE(other.out.find("prompt cache was made for lmx.model_fingerprint"), std::string::npos) << other.out;
  fs::remove_all(model);
  fs::remove(cache);
}

// Issue 22: in chat, an error during a turn is reported and the conversation goes on
// (and can be saved); a refused /load changes nothing.
TEST_F(Cli, ChatKeepsTheConversationThroughErrors) {
  const std::string opts = "chat --model " + dir_.string() + " --temp 0 --max-tokens 10";
  // A quantized KV cache whose group size does not divide head_dim (8) fails each turn.
  Result r = lmx_run(opts + " --kv-bits 4 --quantized-kv-start 0", "Once upon a time\n/reset\n/quit\n", true);
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("(the conversation is kept: /save FILE saves it)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(conversation cleared)"), std::string::npos) << r.out;

  // A session file whose template_context is not an object: refused, nothing replaced.
  const fs::path good = dir_ / "good-session.safetensors";
  Result saved = lmx_run(opts, "Once upon a time\n/save " + good.string() + "\n");
  ASSERT_EQ(saved.status, 0);
  std::ifstream in(good, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  nlohmann::json header = nlohmann::json::parse(bytes.substr(8, n));
  nlohmann::json session = nlohmann::json::parse(header["__metadata__"]["1.lmx.chat_session"].get<std::string>());
  session["messages"] = nlohmann::json::array({{{"role", "user"}, {"content", "Lily"}}});
  session["template_context"] = "not an object";
  header["__metadata__"]["1.lmx.chat_session"] = session.dump();
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((h.size() >> (8 * i)) & 0xff);
  const fs::path bad = dir_ / "bad-session.safetensors";
  std::ofstream(bad, std::ios::binary) << out << h << bytes.substr(8 + n);
  const fs::path after = dir_ / "after-session.safetensors";
  Result load = lmx_run(opts, "Once upon a time\n/load " + bad.string() + "\n/save " + after.string() + "\n", true);
  EXPECT_EQ(load.status, 0) << load.out;
  EXPECT_NE(load.out.find("template_context"), std::string::npos) << load.out;
  // What was saved after the refused /load is the conversation before it: the same
  // bytes as the session saved after that turn alone.
  std::ifstream a(after, std::ios::binary);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(a)), std::istreambuf_iterator<char>()), bytes);
  fs::remove(good);
  fs::remove(bad);
  fs::remove(after);
}

// lmx lora on stories made here: training prints progress and writes mlx-lm's files,
// --test scores them, generate --adapter-path applies them (greedy text follows the
// trained pattern), and a malformed line stops with its line number.
TEST_F(Cli, LoraTrainsAndGenerateAppliesTheAdapters) {
  const fs::path work = fs::temp_directory_path() / ("lmx-cli-lora-" + std::to_string(::getpid()));
  fs::create_directories(work / "data");
  const char* names[] = {"Lily", "Tom", "Sue", "Ben"};
  const char* things[] = {"ball", "kite", "cat", "dog", "box", "cake"};
  for (const auto& [split, first, count] : {std::tuple{"train", 0, 120}, {"valid", 500, 16}, {"test", 900, 16}}) {
    std::ofstream f(work / "data" / (std::string(split) + ".jsonl"));
    for (int i = first; i < first + count; ++i) {
      const std::string n = names[i % 4], t = things[(i / 4) % 6];
      f << "{\"text\": \"" << n << " had a " << t << ". " << n << " took the " << t << " to the park.\"}\n";
    }
  }
  const std::string common = "--model " + dir_.string() + " --data " + (work / "data").string() + " --adapter-path " +
                             (work / "adapters").string() + " -t 1";
  Result train = lmx_run("lora " + common + " --train --iters 100 --learning-rate 5e-4 --steps-per-report 50 "
                         "--steps-per-eval 100 --save-every 0", "", true);
  EXPECT_EQ(train.status, 0) << train.out;
  EXPECT_NE(train.out.find("Iter 0: val loss"), std::string::npos) << train.out;
  EXPECT_NE(train.out.find("Iter 50: train loss"), std::string::npos) << train.out;
  EXPECT_NE(train.out.find("tokens/s"), std::string::npos) << train.out;
  EXPECT_NE(train.out.find("peak memory"), std::string::npos) << train.out;
  EXPECT_TRUE(fs::exists(work / "adapters" / "adapters.safetensors"));
  EXPECT_TRUE(fs::exists(work / "adapters" / "adapter_config.json"));
  Result test = lmx_run("lora " + common + " --test");
  EXPECT_EQ(test.status, 0);
  EXPECT_EQ(test.out.rfind("Test loss ", 0), 0u) << test.out;

  const std::string gen = "generate --model " + dir_.string() + " --prompt \"Ben had a\" --temp 0 --max-tokens 12";
  Result base = lmx_run(gen), adapted = lmx_run(gen + " --adapter-path " + (work / "adapters").string());
  EXPECT_EQ(adapted.status, 0);
  EXPECT_NE(adapted.out, base.out);
  EXPECT_NE(adapted.out.find("took the"), std::string::npos) << adapted.out;

  std::ofstream(work / "data" / "valid.jsonl") << "{\"text\": \"ok\"}\n{\"text\": 1\n";
  Result bad = lmx_run("lora " + common + " --train --iters 1", "", true);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("valid.jsonl:2: not valid JSON"), std::string::npos) << bad.out;
  fs::remove_all(work);
}

// convert -q names each layer it leaves unquantized and why; the written weights agree
// (no scales for those, scales for the rest). A group size no layer fits is refused.
TEST_F(Cli, ConvertQuantizeReportsLayersLeftUnquantized) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  const fs::path out = dir_ / "q4g32";
  Result r = lmx_run("convert -q --q-group-size 32 --model " + dir_.string() + " --out " + out.string(), "", true);
  ASSERT_EQ(r.status, 0) << r.out;
  std::string expected = "quantized 31 layers to affine 4 bits (group size 32); left 5 unquantized:\n";
  for (int i = 0; i < 5; ++i) {
    expected += "  model.layers." + std::to_string(i) +
                ".mlp.down_proj: input dimension 172 is not a multiple of the group size 32\n";
  }
  EXPECT_EQ(r.out, expected + "wrote " + out.string() + "\n");
  std::ifstream in(out / "model.safetensors", std::ios::binary);
  std::string len(8, '\0');
  in.read(len.data(), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(len[static_cast<size_t>(i)]);
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  const nlohmann::json names = nlohmann::json::parse(header);
  EXPECT_FALSE(names.contains("model.layers.0.mlp.down_proj.scales"));
  EXPECT_TRUE(names.contains("model.layers.0.mlp.up_proj.scales"));
  EXPECT_TRUE(names.contains("model.embed_tokens.scales"));
  const fs::path none = dir_ / "q4g128";
  Result refused = lmx_run("convert -q --q-group-size 128 --model " + dir_.string() + " --out " + none.string(), "", true);
  EXPECT_NE(refused.status, 0);
  EXPECT_EQ(refused.out, "lmx: error: -q: no layer can be quantized with --q-group-size 128 (model.embed_tokens: "
                         "input dimension 64 is not a multiple of the group size 128); nothing written\n");
  EXPECT_FALSE(fs::exists(none));
  fs::remove_all(out);
}

TEST(CliErrors, BadInputGivesOneClearLineAndNonZeroExit) {
  Result r = lmx_run("generate --model /nonexistent/model --prompt hi", "", true);
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(r.out.rfind("lmx: error: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  Result t = lmx_run("template --template /nonexistent.jinja --messages /nonexistent.json", "", true);
  EXPECT_NE(t.status, 0);
  EXPECT_NE(t.out.find("/nonexistent"), std::string::npos);
  Result h = lmx_run("--help", "", true);
  EXPECT_EQ(h.status, 0);
  EXPECT_NE(h.out.find("generate"), std::string::npos);
}

// --device is checked before anything is loaded: an unknown name, and a device this build
// or machine lacks, each give one line naming the flag.
TEST(CliErrors, DeviceIsCheckedBeforeLoading) {
  for (const char* cmd : {"generate --prompt hi", "chat", "bench", "logits --tokens 1"}) {
    Result r = lmx_run(std::string(cmd) + " --model /nonexistent/model --device tpu", "", true);
    EXPECT_NE(r.status, 0) << cmd;
    EXPECT_EQ(r.out.rfind("lmx: error: --device tpu: device 'tpu' is not cpu, cuda or cuda:N", 0), 0u) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  }
  if (lmx::built_with_cuda()) GTEST_SKIP() << "built with CUDA: whether cuda:0 exists depends on the machine";
  Result r = lmx_run("bench --config ../shared/data/configs/llama-3.2-1b.json --device cuda", "", true);
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(r.out.rfind("lmx: error: --device cuda: device cuda:0 is not available in this build of lmx", 0), 0u)
      << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
}

// A negative budget would wrap to an unbounded size_t: refused, naming the option.
TEST_F(Cli, ServeRefusesANegativePrefixCacheBudget) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  const Result r = lmx_run("serve --model " + dir_.string() + " --port 0 --prefix-cache-bytes -1", "", true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("--prefix-cache-bytes: must be a byte count >= 0"), std::string::npos) << r.out;
}

// lmx serve as a user starts it: on 127.0.0.1, a free port (--port 0) announced on
// stderr, answers a chat completion equal to `lmx generate`, refuses a wrong key, and
// exits 0 on SIGTERM.
TEST_F(Cli, ServeAnswersOnLoopbackAndStopsOnSigterm) {
  ASSERT_EQ(convert_.status, 0) << convert_.out;
  const Result generated = lmx_run("generate --model " + dir_.string() + " --prompt 'Once upon' --max-tokens 20 --temp 0");
  ASSERT_EQ(generated.status, 0);
  ServeProcess serve({"-m", dir_.string(), "--api-key", "k-123", "-t", "1", "--prefix-cache-bytes", "65536"},
                     dir_ / "serve.log");
  const int port = serve.port();
  if (port > 0) {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(30);
    const std::string body =
        R"({"messages": [{"role": "user", "content": "Once upon"}], "max_tokens": 20, "temperature": 0})";
    const auto denied = client.Post("/v1/chat/completions", {{"Authorization", "Bearer k-124"}}, body, "application/json");
    ASSERT_TRUE(denied);
    EXPECT_EQ(denied->status, 401);
    const auto res = client.Post("/v1/chat/completions", {{"Authorization", "Bearer k-123"}}, body, "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << res->body;
    // `lmx generate` ends its output with a newline.
    EXPECT_EQ(nlohmann::json::parse(res->body)["choices"][0]["message"]["content"].get<std::string>() + "\n",
              generated.out);
  }
  const int status = serve.stop();
  ASSERT_GT(port, 0) << "lmx serve announced no port";
  ASSERT_TRUE(WIFEXITED(status)) << "lmx serve did not stop on SIGTERM";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
