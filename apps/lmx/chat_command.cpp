// lmx chat: an interactive conversation (ChatSession) on the terminal. Multi-line input:
// end a line with "\" to continue it, or wrap a block in """ ... """. Commands: /reset
// (forget the conversation), /save FILE and /load FILE (the conversation with its KV
// cache), /quit. Ctrl-C stops the reply and returns to the prompt.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <exception>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <unistd.h>

#include "cli_common.h"
#include "generation_options.h"
#include "logprobs_output.h"
#include "wired_options.h"
#include "commands.h"
#include "lmx/base/error.h"
#include "lmx/generate/chat_session.h"
#include "lmx/vision/image_decode.h"

namespace lmx::cli {
namespace {

struct ChatArgs {
  std::string model;
  std::string adapter_path;
  std::string system_prompt;
  GenerationArgs gen = [] {
    GenerationArgs g;
    g.max_tokens = 512;
    g.temp = 0.6f;
    return g;
  }();
  std::string resume;
  int threads = 0;
  std::string device = "cpu";
  int tensor_parallel = 1;
  bool verbose = false;
  WiredArgs wired;
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

void print_turn_stats(const generate::GenerationInfo& info) {
  std::fprintf(stderr, "[prompt: %lld tokens (%lld cached), %.1f tokens-per-sec | generation: %lld tokens, %.1f "
               "tokens-per-sec | peak memory %s | %s]\n",
               static_cast<long long>(info.prompt_tokens), static_cast<long long>(info.cached_prompt_tokens),
               info.prompt_tps, static_cast<long long>(info.generated_tokens), info.generation_tps,
               format_bytes(info.peak_memory_bytes).c_str(), generate::stop_reason_name(info.stop_reason));
}

// "/save FILE" -> FILE; nullopt when `message` is not that command.
std::optional<std::string> command_argument(const std::string& message, const std::string& command) {
  if (message.rfind(command, 0) != 0) return std::nullopt;
  std::string rest = message.substr(command.size());
  if (!rest.empty() && rest[0] != ' ') return std::nullopt;
  const size_t b = rest.find_first_not_of(' ');
  return b == std::string::npos ? std::string() : rest.substr(b);
}

// Handles a /command; false when the message is text for the model.
bool handle_command(const std::string& message, generate::ChatSession& session) {
  if (message == "/reset") {
    session.clear();
    std::fputs("(conversation cleared)\n", stdout);
    return true;
  }
  for (const char* cmd : {"/image", "/video"}) {
    auto path = command_argument(message, cmd);
    if (!path) continue;
    const bool video = std::string(cmd) == "/video";
    if (path->empty()) {
      std::fprintf(stderr, "usage: %s PATH (the %s joins your next message)\n", cmd, video ? "video" : "image");
      return true;
    }
    try {
      if (video) {
        session.add_video(*path);
      } else {
        session.add_image(vision::load_image(*path));
      }
      std::printf("(%s %s joins your next message)\n", video ? "video" : "image", path->c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "lmx chat: %s\n", e.what());
    }
    return true;
  }
  for (const char* cmd : {"/save", "/load"}) {
    auto file = command_argument(message, cmd);
    if (!file) continue;
    if (file->empty()) {
      std::fprintf(stderr, "usage: %s FILE\n", cmd);
      return true;
    }
    try {
      if (std::string(cmd) == "/save") {
        session.save(*file);
        std::printf("(conversation saved to %s)\n", file->c_str());
      } else {
        session.restore(*file);
        std::printf("(conversation restored from %s: %zu messages)\n", file->c_str(), session.history().size());
      }
    } catch (const std::exception& e) {  // lmx::Error or anything else: nothing is lost
      std::fprintf(stderr, "lmx chat: %s\n", e.what());  // the conversation goes on
    }
    return true;
  }
  return false;
}

// Streams a reply: text as it comes, reasoning dimmed (on a terminal), tool calls the
// model writes as their raw text (nothing it writes is hidden), each token's logprobs to
// `logprobs` when given. Ctrl-C stops it.
bool print_event(const generate::GenerationEvent& e, LogprobsOutput* logprobs) {
  static const bool tty = ::isatty(STDOUT_FILENO) != 0;
  using K = generate::GenerationEvent::Kind;
  if (e.kind == K::token) {
    if (logprobs) logprobs->write(e.token);
  } else if (e.kind == K::info) {
    if (logprobs) logprobs->restart();  // the next round starts a new reply
  } else if (e.kind == K::text || e.kind == K::tool_call || e.kind == K::rejected_tool_call) {
    std::fwrite(e.text.data(), 1, e.text.size(), stdout);
  } else if (e.kind == K::reasoning) {
    if (tty) std::fputs("\033[2m", stdout);
    std::fwrite(e.text.data(), 1, e.text.size(), stdout);
    if (tty) std::fputs("\033[0m", stdout);
  }
  std::fflush(stdout);
  return !g_interrupted.load();
}

void run_chat(const ChatArgs& a) {
  apply_threads(a.threads);
  const Device device = device_arg(a.device);
  const generate::GenerateParameters p = to_parameters(a.gen);
  const nlohmann::ordered_json variables = chat_template_variables(a.gen);
  std::vector<std::string> stops = stop_strings(a.gen);
  auto container =
      load_model_with_adapters(a.model, {.device = device, .tensor_parallel = a.tensor_parallel}, a.adapter_path);
  check_against_model(a.gen, *container, 0);
  std::optional<LogprobsOutput> logprobs;
  if (a.gen.top_logprobs) logprobs.emplace(a.gen.logprobs_file, container->tokenizer());
  generate::ChatSession session(container, a.system_prompt, p);
  session.set_template_context(variables);
  session.set_extra_eos(a.gen.extra_eos);
  session.set_stop_strings(std::move(stops));
  // Ctrl-C during a long prefill stops it at the next chunk (the turn ends as cancelled).
  session.set_prefill_progress([](int64_t done, int64_t total) {
    show_prefill_progress(done, total);
    if (g_interrupted.load()) throw Cancelled("interrupted");
  });
  if (!a.resume.empty()) session.restore(a.resume);
  WiredLog wired_log(a.verbose);
  session.set_wired_ticket(make_wired_ticket(a.wired, container->model(), 0, p));
  std::fprintf(stderr,
               "lmx chat: %s. /reset clears the conversation, /save FILE and /load FILE keep it, /image PATH "
               "adds an image to your next message (vision-language models), /video PATH a video (Qwen2-VL "
               "families), /quit exits.\n",
               a.model.c_str());
  std::signal(SIGINT, on_sigint);
  while (auto message = read_message()) {
    if (*message == "/quit" || *message == "/exit") break;
    if (message->empty() || handle_command(*message, session)) continue;
    g_interrupted.store(false);
    encode_warning_on_invalid_utf8(container->tokenizer(), *message, false, "the message");
    try {
      session.stream_details(*message, [&](const generate::GenerationEvent& e) {
        return print_event(e, logprobs ? &*logprobs : nullptr);
      });
    } catch (const std::exception& e) {
      // The session drops the failed turn and keeps the conversation before it.
      std::fprintf(stderr, "\nlmx chat: %s (the conversation is kept: /save FILE saves it)\n", e.what());
      continue;
    }
    std::fputc('\n', stdout);
    std::fflush(stdout);
    wired_log.flush();
    if (a.verbose) print_turn_stats(session.last_info());
  }
  std::signal(SIGINT, SIG_DFL);
  if (logprobs) logprobs->finish();
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  auto* cmd = app.add_subcommand("chat", "Interactive chat (multi-turn, KV cache reused between turns)");
  cmd->add_option("-m,--model", a->model, "Model folder or Hugging Face repo id")->required();
  add_adapter_path_option(cmd, a->adapter_path);
  cmd->add_option("--system-prompt", a->system_prompt, "Instructions (system message)");
  add_sampling_options(cmd, a->gen);
  add_cache_options(cmd, a->gen);
  add_wired_options(cmd, a->wired);
  cmd->add_option("--resume", a->resume, "Continue a conversation saved with /save");
  cmd->add_option("-t,--threads", a->threads, "CPU threads (default: all cores)");
  add_device_option(cmd, a->device);
  add_tensor_parallel_option(cmd, a->tensor_parallel);
  cmd->add_flag("-v,--verbose", a->verbose, "Print token counts, speed and peak memory after each reply");
  cmd->callback([a] { run_chat(*a); });
}

}  // namespace lmx::cli
