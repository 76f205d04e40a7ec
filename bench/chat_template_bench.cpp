// Chat templates: parse + render of the whole template corpus
// (../shared/data/chat-templates, every folder) over the fixture conversations of
// tests/data/chat/conversations.json, against Python jinja2 doing the same on this
// machine (tools/fixtures/render_templates.py --bench), measured in the same run.
#include <benchmark/benchmark.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmx/chat/chat_template.h"
#include "lmx/chat/json_value.h"

namespace {

using nlohmann::ordered_json;
using namespace lmx::chat;

std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Conversation {
  Value messages, tools, extra;
  ChatRenderOptions options;
};

struct Corpus {
  std::vector<std::string> sources;
  std::vector<Conversation> conversations;
  SpecialTokens special;
  bool ok = false;
};

const Corpus& corpus() {
  static const Corpus c = [] {
    Corpus c;
    std::filesystem::path root = LMX_SOURCE_DIR;
    auto shared = root / ".." / "shared" / "data" / "chat-templates";
    auto convs_path = root / "tests" / "data" / "chat" / "conversations.json";
    if (!std::filesystem::exists(shared) || !std::filesystem::exists(convs_path)) return c;
    for (const char* folder : {"llama.cpp", "hf-ollama-utils-gguf", "mistral-common", "mistral.rs"}) {
      std::vector<std::filesystem::path> files;
      for (const auto& e : std::filesystem::directory_iterator(shared / folder)) files.push_back(e.path());
      std::sort(files.begin(), files.end());
      for (const auto& p : files) {
        std::string name = p.filename().string();
        if (p.extension() == ".jinja") {
          c.sources.push_back(read_text(p));
        } else if (p.extension() == ".json" && name[0] != '_') {
          auto cfg = ordered_json::parse(read_text(p));
          if (cfg.contains("chat_template") && cfg["chat_template"].is_string())
            c.sources.push_back(cfg["chat_template"].get<std::string>());
        }
      }
    }
    auto convs = ordered_json::parse(read_text(convs_path));
    for (auto it = convs["special_tokens"].begin(); it != convs["special_tokens"].end(); ++it)
      c.special.emplace_back(it.key(), it.value().get<std::string>());
    for (auto it = convs["conversations"].begin(); it != convs["conversations"].end(); ++it) {
      const auto& j = it.value();
      Conversation conv;
      conv.messages = value_from_json(j["messages"]);
      conv.tools = j.contains("tools") ? value_from_json(j["tools"]) : Value::none();
      conv.extra = j.contains("extra") ? value_from_json(j["extra"]) : Value::none();
      conv.options.add_generation_prompt = j["add_generation_prompt"].get<bool>();
      conv.options.continue_final_message = j.value("continue_final_message", false);
      std::tm now{};
      now.tm_year = 126;
      now.tm_mon = 2;
      now.tm_mday = 14;
      conv.options.render.now = now;
      c.conversations.push_back(std::move(conv));
    }
    c.ok = true;
    return c;
  }();
  return c;
}

// Index of "parallel_tool_calls" in conversations.json (the Python side uses the same).
constexpr size_t kParallelToolCalls = 8;

size_t render_all(const std::vector<std::unique_ptr<ChatTemplate>>& templates, const Corpus& c) {
  size_t bytes = 0;
  for (const auto& t : templates) {
    if (!t) continue;
    for (const Conversation& conv : c.conversations) {
      try {
        bytes += t->render_values(conv.messages, conv.tools, conv.extra, c.special, conv.options).size();
      } catch (const std::exception&) {
        // Some templates reject some conversations (raise_exception), as in Python.
      }
    }
  }
  return bytes;
}

std::vector<std::unique_ptr<ChatTemplate>> parse_all(const Corpus& c) {
  std::vector<std::unique_ptr<ChatTemplate>> out;
  out.reserve(c.sources.size());
  for (const auto& s : c.sources) out.push_back(std::make_unique<ChatTemplate>(s));
  return out;
}

void BM_ParseCorpus(benchmark::State& state) {
  const Corpus& c = corpus();
  if (!c.ok) return state.SkipWithError("missing ../shared/data/chat-templates or tests/data/chat");
  for (auto _ : state) benchmark::DoNotOptimize(parse_all(c));
  state.counters["templates"] = static_cast<double>(c.sources.size());
}
BENCHMARK(BM_ParseCorpus)->Unit(benchmark::kMillisecond);

void BM_RenderCorpus(benchmark::State& state) {
  const Corpus& c = corpus();
  if (!c.ok) return state.SkipWithError("missing ../shared/data/chat-templates or tests/data/chat");
  auto templates = parse_all(c);
  size_t bytes = 0;
  for (auto _ : state) bytes = render_all(templates, c);
  state.counters["renders"] = static_cast<double>(c.sources.size() * c.conversations.size());
  state.counters["out_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_RenderCorpus)->Unit(benchmark::kMillisecond);

void BM_ParseAndRenderCorpus(benchmark::State& state) {
  const Corpus& c = corpus();
  if (!c.ok) return state.SkipWithError("missing ../shared/data/chat-templates or tests/data/chat");
  for (auto _ : state) benchmark::DoNotOptimize(render_all(parse_all(c), c));
}
BENCHMARK(BM_ParseAndRenderCorpus)->Unit(benchmark::kMillisecond);

// Renders of one pre-parsed template per request, the server's steady state.
void BM_RenderOneChat(benchmark::State& state) {
  const Corpus& c = corpus();
  if (!c.ok) return state.SkipWithError("missing ../shared/data/chat-templates or tests/data/chat");
  ChatTemplateCache cache;
  // Qwen2.5 (ChatML with tools) as a typical template; the parallel tool-call chat.
  std::string src = read_text(std::filesystem::path(LMX_SOURCE_DIR) / ".." / "shared" / "data" / "chat-templates" /
                              "llama.cpp" / "Qwen-Qwen2.5-7B-Instruct.jinja");
  const Conversation& conv = c.conversations[kParallelToolCalls];
  for (auto _ : state) {
    auto t = cache.get(src);
    benchmark::DoNotOptimize(t->render_values(conv.messages, conv.tools, conv.extra, c.special, conv.options));
  }
}
BENCHMARK(BM_RenderOneChat)->Unit(benchmark::kMicrosecond);

// CPU time of this thread: on a shared machine, waiting for a core is not our cost
// (the Python side uses time.process_time() likewise).
double cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

// Ours vs Python jinja2 in one run: best of N CPU times for both, ratio as a counter.
void BM_VsPythonJinja2(benchmark::State& state) {
  const Corpus& c = corpus();
  if (!c.ok) return state.SkipWithError("missing ../shared/data/chat-templates or tests/data/chat");
  constexpr int kRepeats = 5;
  for (auto _ : state) {
    double best_parse = 1e30, best_total = 1e30;
    for (int i = 0; i < kRepeats; ++i) {
      double t0 = cpu_ms();
      auto templates = parse_all(c);
      double t1 = cpu_ms();
      benchmark::DoNotOptimize(render_all(templates, c));
      double t2 = cpu_ms();
      best_parse = std::min(best_parse, t1 - t0);
      best_total = std::min(best_total, t2 - t0);
    }
    state.counters["ours_parse_ms"] = best_parse;
    state.counters["ours_total_ms"] = best_total;
    std::string cmd = "cd '" + std::string(LMX_SOURCE_DIR) + "' && python3 tools/fixtures/render_templates.py --bench " +
                      std::to_string(kRepeats) + " 2>/dev/null";
    FILE* pipe = popen(cmd.c_str(), "r");
    if (!pipe) return state.SkipWithError("cannot run python3");
    std::string out;
    char buf[512];
    while (fgets(buf, sizeof(buf), pipe)) out += buf;
    if (pclose(pipe) != 0 || out.empty()) return state.SkipWithError("python3 + jinja2 not available");
    auto py = nlohmann::json::parse(out);
    double py_parse = py["parse_ms"].get<double>(), py_total = py["total_ms"].get<double>();
    state.counters["py_parse_ms"] = py_parse;
    state.counters["py_total_ms"] = py_total;
    state.counters["speedup_parse"] = py_parse / best_parse;
    state.counters["speedup_total"] = py_total / best_total;
    state.counters["speedup_render"] = (py_total - py_parse) / (best_total - best_parse);
    // One parsed template, one chat: the steady state of a server.
    ChatTemplate one(read_text(std::filesystem::path(LMX_SOURCE_DIR) / ".." / "shared" / "data" / "chat-templates" /
                               "llama.cpp" / "Qwen-Qwen2.5-7B-Instruct.jinja"));
    const Conversation& conv = c.conversations[kParallelToolCalls];
    double best_one = 1e30;
    for (int i = 0; i < kRepeats; ++i) {
      double t0 = cpu_ms();
      for (int k = 0; k < 200; ++k)
        benchmark::DoNotOptimize(one.render_values(conv.messages, conv.tools, conv.extra, c.special, conv.options));
      best_one = std::min(best_one, (cpu_ms() - t0) * 1e3 / 200);
    }
    double py_one = py["one_chat_us"].get<double>();
    state.counters["ours_one_chat_us"] = best_one;
    state.counters["py_one_chat_us"] = py_one;
    state.counters["speedup_one_chat"] = py_one / best_one;
  }
}
BENCHMARK(BM_VsPythonJinja2)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
