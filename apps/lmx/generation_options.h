// The generation options `lmx generate`, `lmx chat` and `lmx cache-prompt` share (mlx-lm's
// names), in one place: declaring them on a subcommand and turning them into
// GenerateParameters, template variables and EOS tokens.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "lmx/generate/generate_parameters.h"

namespace CLI {
class App;
}

namespace lmx::generate {
class ModelContainer;
}

namespace lmx::cli {

// --top-logprobs at most (as OpenAI's top_logprobs).
constexpr int kMaxTopLogprobs = 20;

struct GenerationArgs {
  int64_t max_tokens = 256;
  float temp = 0.0f;
  float top_p = 1.0f;
  int top_k = 0;
  float min_p = 0.0f;
  std::optional<uint64_t> seed;
  std::optional<float> repetition_penalty;
  int repetition_context_size = 20;
  std::optional<float> presence_penalty;
  int presence_context_size = 20;
  std::optional<float> frequency_penalty;
  int frequency_context_size = 20;
  std::vector<std::string> logit_bias;  // "ID=BIAS" each
  float xtc_probability = 0.0f;
  float xtc_threshold = 0.0f;
  std::vector<std::string> stop;
  std::optional<int> top_logprobs;  // given: write each token's logprob (and this many alternatives)
  std::string logprobs_file;        // where (JSON lines); empty: stderr
  std::vector<std::string> extra_eos;
  std::string chat_template_config;  // JSON object of template variables
  // KV cache and prefill
  int prefill_step_size = 512;
  std::optional<int64_t> max_kv_size;
  std::optional<int> kv_bits;
  std::optional<int> kv_value_bits;
  int kv_group_size = 64;
  int64_t quantized_kv_start = 0;
};

// --max-tokens, --temp, --top-p, --top-k, --min-p, --seed, --repetition-penalty,
// --repetition-context-size, --presence-penalty, --presence-context-size,
// --frequency-penalty, --frequency-context-size, --logit-bias, --xtc-probability,
// --xtc-threshold, --stop, --top-logprobs, --logprobs-file, --extra-eos-token,
// --chat-template-config (defaults shown in --help are the values `a` holds when called).
void add_sampling_options(CLI::App* cmd, GenerationArgs& a);
// --max-kv-size, --kv-bits, --kv-value-bits, --kv-group-size, --quantized-kv-start,
// --prefill-step-size.
void add_cache_options(CLI::App* cmd, GenerationArgs& a);

// The options as GenerateParameters; InvalidArgument naming the option for a value out
// of range or malformed (checks that need the model are in check_against_model()).
generate::GenerateParameters to_parameters(const GenerationArgs& a);
// --stop strings (InvalidArgument for an empty one).
std::vector<std::string> stop_strings(const GenerationArgs& a);
// Checks the options against the loaded model: --logit-bias ids inside its vocabulary
// (InvalidArgument naming the option), and a warning on stderr when the prompt plus
// --max-tokens passes the model's context (config.json max_position_embeddings).
void check_against_model(const GenerationArgs& a, generate::ModelContainer& container, int64_t prompt_tokens);
// --chat-template-config as a JSON object (null when not given); InvalidArgument naming
// the option for text that is not a JSON object.
nlohmann::ordered_json chat_template_variables(const GenerationArgs& a);

// Prefill progress on stderr ("prefill 1024/4096") when stderr is a terminal and the
// prompt takes more than one chunk; the line is erased when prefill ends.
void show_prefill_progress(int64_t done, int64_t total);

}  // namespace lmx::cli
