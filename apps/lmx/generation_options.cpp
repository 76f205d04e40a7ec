#include "generation_options.h"

#include <CLI/CLI.hpp>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "lmx/base/error.h"
#include "lmx/generate/model_container.h"
#include "lmx/generate/quantized_kv_cache.h"

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
  cmd->add_option("--presence-penalty", a.presence_penalty,
                  "Subtract this from the logit of every token seen in the context window");
  cmd->add_option("--presence-context-size", a.presence_context_size, "Tokens the presence penalty looks back over")
      ->capture_default_str();
  cmd->add_option("--frequency-penalty", a.frequency_penalty,
                  "Subtract this times its count in the context window from each token's logit");
  cmd->add_option("--frequency-context-size", a.frequency_context_size,
                  "Tokens the frequency penalty looks back over")
      ->capture_default_str();
  cmd->add_option("--logit-bias", a.logit_bias, "ID=BIAS: add BIAS to token ID's logit (repeatable)");
  cmd->add_option("--xtc-probability", a.xtc_probability,
                  "XTC: chance per step of excluding the top choices (0 = off)")
      ->capture_default_str();
  cmd->add_option("--xtc-threshold", a.xtc_threshold,
                  "XTC: tokens at least this likely are excluded, all but the least likely, in (0, 0.5]")
      ->capture_default_str();
  cmd->add_option("--stop", a.stop, "Stop before this text; it is not printed (repeatable)");
  cmd->add_option("--top-logprobs", a.top_logprobs,
                  "Write each generated token's log-probability and N alternatives as JSON lines "
                  "(to stderr, or --logprobs-file)");
  cmd->add_option("--logprobs-file", a.logprobs_file, "Where --top-logprobs writes its JSON lines");
  cmd->add_option("--extra-eos-token", a.extra_eos, "Additional end-of-sequence token (repeatable)");
  cmd->add_option("--chat-template-config", a.chat_template_config,
                  "Chat template variables as a JSON object, e.g. '{\"enable_thinking\": false}'");
}

void add_cache_options(CLI::App* cmd, GenerationArgs& a) {
  cmd->add_option("--max-kv-size", a.max_kv_size, "Keep at most this many positions (rotating KV cache)");
  cmd->add_option("--kv-bits", a.kv_bits, "Quantize the KV cache to this many bits: 2, 3, 4, 5, 6, 8");
  cmd->add_option("--kv-value-bits", a.kv_value_bits, "Bits for the values when they differ from --kv-bits");
  cmd->add_option("--kv-group-size", a.kv_group_size, "Group size of the quantized KV cache")->capture_default_str();
  cmd->add_option("--quantized-kv-start", a.quantized_kv_start, "Quantize the KV cache once it holds this many tokens")
      ->capture_default_str();
  cmd->add_option("--prefill-step-size", a.prefill_step_size, "Prompt tokens per prefill chunk")->capture_default_str();
}

namespace {

// "ID=BIAS" -> (id, bias); InvalidArgument naming --logit-bias.
std::pair<int32_t, float> parse_logit_bias(const std::string& text) {
  const size_t eq = text.find('=');
  const std::string id_text = text.substr(0, eq);
  const std::string bias_text = eq == std::string::npos ? "" : text.substr(eq + 1);
  char* end = nullptr;
  errno = 0;
  const long long id = std::strtoll(id_text.c_str(), &end, 10);
  const bool id_ok = !id_text.empty() && *end == '\0' && errno == 0 && id >= 0 && id <= INT32_MAX;
  errno = 0;
  const float bias = std::strtof(bias_text.c_str(), &end);
  const bool bias_ok = !bias_text.empty() && *end == '\0' && errno == 0 && std::isfinite(bias);
  if (!id_ok || !bias_ok) {
    throw InvalidArgument("--logit-bias '" + text + "': expected TOKEN_ID=BIAS, e.g. 42=-100");
  }
  return {static_cast<int32_t>(id), bias};
}

void check_context_size(int size, const char* option) {
  if (size < 0) throw InvalidArgument(std::string(option) + " must be >= 0, got " + std::to_string(size));
}

}  // namespace

generate::GenerateParameters to_parameters(const GenerationArgs& a) {
  if (a.max_tokens < 0) throw InvalidArgument("--max-tokens must be >= 0, got " + std::to_string(a.max_tokens));
  if (a.prefill_step_size <= 0)
    throw InvalidArgument("--prefill-step-size must be > 0, got " + std::to_string(a.prefill_step_size));
  check_context_size(a.repetition_context_size, "--repetition-context-size");
  check_context_size(a.presence_context_size, "--presence-context-size");
  check_context_size(a.frequency_context_size, "--frequency-context-size");
  if (a.top_logprobs && (*a.top_logprobs < 0 || *a.top_logprobs > kMaxTopLogprobs)) {
    throw InvalidArgument("--top-logprobs must be in [0, " + std::to_string(kMaxTopLogprobs) + "], got " +
                          std::to_string(*a.top_logprobs));
  }
  if (!a.logprobs_file.empty() && !a.top_logprobs) throw InvalidArgument("--logprobs-file needs --top-logprobs N");
  if (a.xtc_probability < 0 || a.xtc_probability > 1) {
    throw InvalidArgument("--xtc-probability must be in [0, 1], got " + std::to_string(a.xtc_probability));
  }
  if (a.xtc_probability > 0 && (a.xtc_threshold <= 0 || a.xtc_threshold > 0.5f)) {
    throw InvalidArgument("--xtc-threshold must be in (0, 0.5] with --xtc-probability, got " +
                          std::to_string(a.xtc_threshold));
  }
  if (a.kv_value_bits && !a.kv_bits) throw InvalidArgument("--kv-value-bits needs --kv-bits");
  if (a.kv_bits) {
    generate::check_kv_bits(*a.kv_bits, "--kv-bits");
    if (a.kv_value_bits) generate::check_kv_bits(*a.kv_value_bits, "--kv-value-bits");
    generate::check_kv_group_size(a.kv_group_size, "--kv-group-size");
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
  p.presence_penalty = a.presence_penalty;
  p.presence_context_size = a.presence_context_size;
  p.frequency_penalty = a.frequency_penalty;
  p.frequency_context_size = a.frequency_context_size;
  for (const auto& b : a.logit_bias) {
    const auto [id, bias] = parse_logit_bias(b);
    p.logit_bias[id] += bias;
  }
  p.xtc_probability = a.xtc_probability;
  p.xtc_threshold = a.xtc_threshold;
  p.logprobs = a.top_logprobs.has_value();
  p.top_logprobs = a.top_logprobs.value_or(0);
  p.max_kv_size = a.max_kv_size;
  p.kv_bits = a.kv_bits;
  p.kv_value_bits = a.kv_value_bits;
  p.kv_group_size = a.kv_group_size;
  p.quantized_kv_start = a.quantized_kv_start;
  p.prefill_step_size = a.prefill_step_size;
  return p;
}

std::vector<std::string> stop_strings(const GenerationArgs& a) {
  for (const auto& s : a.stop)
    if (s.empty()) throw InvalidArgument("--stop: the stop text is empty (it would stop before the first token)");
  return a.stop;
}

void check_against_model(const GenerationArgs& a, generate::ModelContainer& container, int64_t prompt_tokens) {
  const int64_t vocab = container.model().vocab_size();
  for (const auto& b : a.logit_bias) {
    const int32_t id = parse_logit_bias(b).first;
    if (id >= vocab) {
      throw InvalidArgument("--logit-bias '" + b + "': token id " + std::to_string(id) +
                            " is outside the model's vocabulary [0, " + std::to_string(vocab) + ")");
    }
  }
  const auto& config = container.folder().text_config();
  const auto it = config.find("max_position_embeddings");
  if (it == config.end() || !it->is_number_integer()) return;
  const int64_t context = it->get<int64_t>();
  if (context > 0 && a.max_tokens > context - prompt_tokens) {
    std::fprintf(stderr,
                 "lmx: warning: --max-tokens %lld with %lld prompt tokens passes the model's context of %lld "
                 "tokens (max_position_embeddings in config.json): output past it may degrade\n",
                 static_cast<long long>(a.max_tokens), static_cast<long long>(prompt_tokens),
                 static_cast<long long>(context));
  }
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
