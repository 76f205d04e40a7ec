// lmx generate: one prompt in, streamed text out (mlx-lm's generate options).
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <optional>

#include "cli_common.h"
#include "commands.h"
#include "lmx/core/error.h"
#include "lmx/generate/generate.h"
#include "lmx/generate/model_container.h"
#include "lmx/generate/prompt_cache.h"

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
  std::optional<int64_t> max_kv_size;
  std::optional<int> kv_bits;
  int kv_group_size = 64;
  int64_t quantized_kv_start = 0;
  std::string prompt_cache_file;
};

generate::GenerateParameters cache_parameters(const GenerateArgs& a) {
  generate::GenerateParameters p;
  p.max_kv_size = a.max_kv_size;
  p.kv_bits = a.kv_bits;
  p.kv_group_size = a.kv_group_size;
  p.quantized_kv_start = a.quantized_kv_start;
  p.prefill_step_size = a.prefill_step_size;
  return p;
}

void add_cache_options(CLI::App* cmd, GenerateArgs& a) {
  cmd->add_option("--max-kv-size", a.max_kv_size, "Keep at most this many positions (rotating KV cache)");
  cmd->add_option("--kv-bits", a.kv_bits, "Quantize the KV cache to this many bits (2-8)");
  cmd->add_option("--kv-group-size", a.kv_group_size, "Group size of the quantized KV cache (default 64)");
  cmd->add_option("--quantized-kv-start", a.quantized_kv_start, "Quantize the KV cache once it holds this many tokens");
  cmd->add_option("--prefill-step-size", a.prefill_step_size, "Prompt tokens per prefill chunk");
}

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
  std::optional<generate::PromptCache> cached;
  std::vector<int32_t> ids;
  if (!a.prompt_cache_file.empty()) {
    // The cache holds the earlier tokens (BOS included): the prompt continues them.
    cached.emplace(generate::load_prompt_cache(a.prompt_cache_file, {{"model", a.model}}));
    ids = container->tokenizer().encode(prompt, false);
    if (ids.empty()) throw InvalidArgument("--prompt-cache-file: give a --prompt to continue the cached one");
  } else {
    ids = container->prepare(input);
  }
  if (a.verbose) {
    std::fprintf(stderr, "==========\n");
    if (container->has_chat_template() && !a.ignore_chat_template) {
      std::fprintf(stderr, "%s\n==========\n", container->render_prompt(input).c_str());
    }
  }
  generate::GenerateParameters p = cache_parameters(a);
  p.max_tokens = a.max_tokens;
  p.temperature = a.temp;
  p.top_p = a.top_p;
  p.top_k = a.top_k;
  p.min_p = a.min_p;
  p.seed = a.seed;
  p.repetition_penalty = a.repetition_penalty;
  p.repetition_context_size = a.repetition_context_size;
  generate::GenerateOptions opts;
  opts.eos_ids = container->eos_ids(a.extra_eos);
  generate::GenerationInfo info;
  container->perform([&](models::LanguageModel& model, const tokenizer::Tokenizer& tok) {
    generate::Generation gen(model, tok, ids, p, opts, cached ? &cached->cache : nullptr);
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
  add_cache_options(cmd, *a);
  cmd->add_option("--prompt-cache-file", a->prompt_cache_file, "Continue from a prompt cache (lmx cache-prompt)");
  cmd->add_option("-t,--threads", a->threads, "CPU threads (default: all cores)");
  cmd->add_flag("-v,--verbose", a->verbose, "Print the prompt and speed / memory statistics");
  cmd->callback([a] { run_generate(*a); });

  auto c = std::make_shared<GenerateArgs>();
  auto* cache = app.add_subcommand("cache-prompt", "Prefill a prompt once and save its KV cache to a file");
  cache->add_option("-m,--model", c->model, "Model folder or Hugging Face repo id")->required();
  cache->add_option("-p,--prompt", c->prompt, "Prompt text, or - to read it from stdin")->required();
  cache->add_option("--prompt-cache-file", c->prompt_cache_file, "Where to write the cache (safetensors)")->required();
  add_cache_options(cache, *c);
  cache->add_option("-t,--threads", c->threads, "CPU threads");
  cache->callback([c] {
    apply_threads(c->threads);
    std::string prompt = c->prompt;
    if (prompt == "-") prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    auto container = generate::ModelContainer::load(resolve_model_arg(c->model).string());
    std::vector<int32_t> ids = container->tokenizer().encode(prompt, true);
    auto kv = container->perform([&](models::LanguageModel& model, const tokenizer::Tokenizer&) {
      return generate::prefill_cache(model, ids, cache_parameters(*c));
    });
    generate::save_prompt_cache(c->prompt_cache_file, kv, {{"model", c->model}});
    std::printf("cached %zu prompt tokens in %s\n", ids.size(), c->prompt_cache_file.c_str());
  });
}

}  // namespace lmx::cli
