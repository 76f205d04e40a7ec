// lmx generate: one prompt in, streamed text out (mlx-lm's generate options).
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <iterator>

#include "cli_common.h"
#include "commands.h"
#include "lmx/core/error.h"
#include "lmx/generate/generate.h"
#include "lmx/generate/model_container.h"

namespace lmx::cli {
namespace {

struct GenerateArgs {
  std::string model;
  std::string prompt = "";
  std::string system_prompt;
  int64_t max_tokens = 256;
  float temp = 0.0f;
  float top_p = 1.0f;
  int top_k = 0;
  float min_p = 0.0f;
  std::optional<uint64_t> seed;
  std::optional<float> repetition_penalty;
  int repetition_context_size = 20;
  std::vector<std::string> extra_eos;
  bool ignore_chat_template = false;
  int threads = 0;
  bool verbose = false;
  int prefill_step_size = 512;
};

// Ctrl-C stops the generation at the next token (the stream then ends cleanly).
generate::Generation* g_generation = nullptr;

void on_sigint(int) {
  if (g_generation) g_generation->cancel();
}

void run_generate(const GenerateArgs& a) {
  apply_threads(a.threads);
  std::string prompt = a.prompt;
  if (prompt == "-") prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  auto container = generate::ModelContainer::load(resolve_model_arg(a.model).string());
  generate::UserInput input;
  input.prompt = prompt;
  input.system_prompt = a.system_prompt;
  input.ignore_chat_template = a.ignore_chat_template;
  std::vector<int32_t> ids = container->prepare(input);
  if (a.verbose) {
    std::fprintf(stderr, "==========\n");
    if (container->has_chat_template() && !a.ignore_chat_template) {
      std::fprintf(stderr, "%s\n==========\n", container->render_prompt(input).c_str());
    }
  }
  generate::GenerateParameters p;
  p.max_tokens = a.max_tokens;
  p.temperature = a.temp;
  p.top_p = a.top_p;
  p.top_k = a.top_k;
  p.min_p = a.min_p;
  p.seed = a.seed;
  p.repetition_penalty = a.repetition_penalty;
  p.repetition_context_size = a.repetition_context_size;
  p.prefill_step_size = a.prefill_step_size;
  generate::GenerateOptions opts;
  opts.eos_ids = container->eos_ids(a.extra_eos);
  generate::GenerationInfo info;
  container->perform([&](models::LanguageModel& model, const tokenizer::Tokenizer& tok) {
    generate::Generation gen(model, tok, ids, p, opts);
    g_generation = &gen;
    std::signal(SIGINT, on_sigint);
    while (auto e = gen.next()) {
      if (e->kind == generate::GenerationEvent::Kind::text) {
        std::fwrite(e->text.data(), 1, e->text.size(), stdout);
        std::fflush(stdout);
      } else if (e->kind == generate::GenerationEvent::Kind::info) {
        info = e->info;
      }
    }
    std::signal(SIGINT, SIG_DFL);
    g_generation = nullptr;
  });
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (a.verbose) {
    std::fprintf(stderr, "==========\n");
    std::fprintf(stderr, "Prompt: %lld tokens, %.3f tokens-per-sec\n", static_cast<long long>(info.prompt_tokens),
                 info.prompt_tps);
    std::fprintf(stderr, "Generation: %lld tokens, %.3f tokens-per-sec\n",
                 static_cast<long long>(info.generated_tokens), info.generation_tps);
    std::fprintf(stderr, "Peak memory: %s\n", format_bytes(info.peak_memory_bytes).c_str());
    std::fprintf(stderr, "Stop reason: %s\n", generate::stop_reason_name(info.stop_reason));
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate text from a prompt");
  cmd->add_option("-m,--model", a->model, "Model folder or Hugging Face repo id")->required();
  cmd->add_option("-p,--prompt", a->prompt, "Prompt text, or - to read it from stdin");
  cmd->add_option("--system-prompt", a->system_prompt, "System message (chat models)");
  cmd->add_option("--max-tokens", a->max_tokens, "Maximum tokens to generate (default 256)");
  cmd->add_option("--temp", a->temp, "Sampling temperature (0 = greedy, the default)");
  cmd->add_option("--top-p", a->top_p, "Nucleus sampling threshold");
  cmd->add_option("--top-k", a->top_k, "Keep only the k most likely tokens (0 = off)");
  cmd->add_option("--min-p", a->min_p, "Minimum probability relative to the top token");
  cmd->add_option("--seed", a->seed, "Random seed");
  cmd->add_option("--repetition-penalty", a->repetition_penalty, "Penalty for repeated tokens (> 1 discourages)");
  cmd->add_option("--repetition-context-size", a->repetition_context_size, "Tokens the penalty looks back over");
  cmd->add_option("--extra-eos-token", a->extra_eos, "Additional end-of-sequence token (repeatable)");
  cmd->add_flag("--ignore-chat-template", a->ignore_chat_template, "Use the prompt as raw text");
  cmd->add_option("--prefill-step-size", a->prefill_step_size, "Prompt tokens per prefill chunk");
  cmd->add_option("-t,--threads", a->threads, "CPU threads (default: all cores)");
  cmd->add_flag("-v,--verbose", a->verbose, "Print the prompt and speed / memory statistics");
  cmd->callback([a] { run_generate(*a); });
}

}  // namespace lmx::cli
