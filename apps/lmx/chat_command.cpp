// lmx chat: an interactive conversation (ChatSession) on the terminal. Multi-line input:
// end a line with "\" to continue it, or wrap a block in """ ... """. Commands: /reset
// (forget the conversation), /quit. Ctrl-C stops the reply and returns to the prompt.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "cli_common.h"
#include "commands.h"
#include "lmx/generate/chat_session.h"

namespace lmx::cli {
namespace {

struct ChatArgs {
  std::string model;
  std::string system_prompt;
  int64_t max_tokens = 512;
  float temp = 0.6f;
  float top_p = 1.0f;
  std::optional<uint64_t> seed;
  int threads = 0;
};

std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted.store(true); }

// One user message, or nullopt at end of input.
std::optional<std::string> read_message() {
  std::string line, text;
  std::fputs(">> ", stdout);
  std::fflush(stdout);
  if (!std::getline(std::cin, line)) return std::nullopt;
  if (line == "\"\"\"") {
    while (std::getline(std::cin, line) && line != "\"\"\"") text += (text.empty() ? "" : "\n") + line;
    return text;
  }
  while (!line.empty() && line.back() == '\\') {
    line.pop_back();
    text += line + "\n";
    if (!std::getline(std::cin, line)) break;
  }
  return text + line;
}

void run_chat(const ChatArgs& a) {
  apply_threads(a.threads);
  auto container = generate::ModelContainer::load(resolve_model_arg(a.model).string());
  generate::GenerateParameters p;
  p.max_tokens = a.max_tokens;
  p.temperature = a.temp;
  p.top_p = a.top_p;
  p.seed = a.seed;
  generate::ChatSession session(container, a.system_prompt, p);
  std::fprintf(stderr, "lmx chat: %s. /reset clears the conversation, /quit exits.\n", a.model.c_str());
  std::signal(SIGINT, on_sigint);
  while (auto message = read_message()) {
    if (*message == "/quit" || *message == "/exit") break;
    if (*message == "/reset") {
      session.clear();
      std::fputs("(conversation cleared)\n", stdout);
      continue;
    }
    if (message->empty()) continue;
    g_interrupted.store(false);
    session.stream_response(*message, [](const std::string& chunk) {
      std::fwrite(chunk.data(), 1, chunk.size(), stdout);
      std::fflush(stdout);
      return !g_interrupted.load();
    });
    std::fputc('\n', stdout);
  }
  std::signal(SIGINT, SIG_DFL);
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  auto* cmd = app.add_subcommand("chat", "Interactive chat (multi-turn, KV cache reused between turns)");
  cmd->add_option("-m,--model", a->model, "Model folder or Hugging Face repo id")->required();
  cmd->add_option("--system-prompt", a->system_prompt, "Instructions (system message)");
  cmd->add_option("--max-tokens", a->max_tokens, "Maximum tokens per reply (default 512)");
  cmd->add_option("--temp", a->temp, "Sampling temperature (default 0.6)");
  cmd->add_option("--top-p", a->top_p, "Nucleus sampling threshold");
  cmd->add_option("--seed", a->seed, "Random seed");
  cmd->add_option("-t,--threads", a->threads, "CPU threads");
  cmd->callback([a] { run_chat(*a); });
}

}  // namespace lmx::cli
