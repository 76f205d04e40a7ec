#include "generation_options.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "lmx/base/error.h"

namespace lmx::cli {

void add_sampling_options(CLI::App* cmd, GenerationArgs& a) {
  cmd->add_option("--max-tokens", a.max_tokens, "Maximum tokens to generate")->capture_default_str();
  cmd->add_option("--temp", a.temp, "Sampling temperature (0 = greedy)")->capture_default_str();
  cmd->add_option("--top-p", a.top_p, "Nucleus sampling threshold")->capture_default_str();
  cmd->add_option("--top-k", a.top_k, "Keep only the k most likely tokens (0 = off)")->capture_default_str();
  cmd->add_option("--min-p", a.min_p, "Minimum probability relative to the top token")->capture_default_str();
  cmd->add_option("--seed", a.seed, "Random seed");
  cmd->add_option("--repetition-penalty", a.repetition_penalty, "Penalty for repeated tokens (> 1 discourages)");
  cmd->add_option("--repetition-context-size", a.repetition_context_size, "Tokens the penalty looks back over")
      ->capture_default_str();
  cmd->add_option("--extra-eos-token", a.extra_eos, "Additional end-of-sequence token (repeatable)");
  cmd->add_option("--chat-template-config", a.chat_template_config,
                  "Chat template variables as a JSON object, e.g. '{\"enable_thinking\": false}'");
}

void add_cache_options(CLI::App* cmd, GenerationArgs& a) {
  cmd->add_option("--max-kv-size", a.max_kv_size, "Keep at most this many positions (rotating KV cache)");
  cmd->add_option("--kv-bits", a.kv_bits, "Quantize the KV cache to this many bits (2-8)");
  cmd->add_option("--kv-group-size", a.kv_group_size, "Group size of the quantized KV cache")->capture_default_str();
  cmd->add_option("--quantized-kv-start", a.quantized_kv_start, "Quantize the KV cache once it holds this many tokens")
      ->capture_default_str();
  cmd->add_option("--prefill-step-size", a.prefill_step_size, "Prompt tokens per prefill chunk")->capture_default_str();
}

generate::GenerateParameters to_parameters(const GenerationArgs& a) {
  if (a.max_tokens < 0) throw InvalidArgument("--max-tokens must be >= 0, got " + std::to_string(a.max_tokens));
  if (a.prefill_step_size <= 0)
    throw InvalidArgument("--prefill-step-size must be > 0, got " + std::to_string(a.prefill_step_size));
  generate::GenerateParameters p;
  p.max_tokens = a.max_tokens;
  p.temperature = a.temp;
  p.top_p = a.top_p;
  p.top_k = a.top_k;
  p.min_p = a.min_p;
  p.seed = a.seed;
  p.repetition_penalty = a.repetition_penalty;
  p.repetition_context_size = a.repetition_context_size;
  p.max_kv_size = a.max_kv_size;
  p.kv_bits = a.kv_bits;
  p.kv_group_size = a.kv_group_size;
  p.quantized_kv_start = a.quantized_kv_start;
  p.prefill_step_size = a.prefill_step_size;
  return p;
}

nlohmann::ordered_json chat_template_variables(const GenerationArgs& a) {
  if (a.chat_template_config.empty()) return nullptr;
  nlohmann::ordered_json v;
  try {
    v = nlohmann::ordered_json::parse(a.chat_template_config);
  } catch (const nlohmann::json::exception& e) {
    throw InvalidArgument(std::string("--chat-template-config is not valid JSON: ") + e.what());
  }
  if (!v.is_object()) {
    throw InvalidArgument("--chat-template-config must be a JSON object of template variables, e.g. "
                          "'{\"enable_thinking\": false}', got " + v.dump());
  }
  return v;
}

void show_prefill_progress(int64_t done, int64_t total) {
  static const bool tty = ::isatty(STDERR_FILENO) != 0;
  if (!tty) return;
  if (done < total) {
    std::fprintf(stderr, "\rprefill %lld/%lld tokens", static_cast<long long>(done), static_cast<long long>(total));
  } else {
    std::fputs("\r\033[K", stderr);  // erase the line: the reply starts here
  }
  std::fflush(stderr);
}

}  // namespace lmx::cli
