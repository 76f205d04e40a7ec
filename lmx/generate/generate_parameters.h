// GenerateParameters: the knobs of one generation, with mlx-swift-lm's fields and
// defaults (plus logit_bias and logprobs from the Python side).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <vector>

namespace lmx::generate {

struct GenerateParameters {
  std::optional<int64_t> max_tokens;   // none: until EOS (or the context ends)
  std::optional<int64_t> max_kv_size;  // full-attention layers keep a rotating window
  std::optional<int> kv_bits;          // quantize the KV cache (2, 3, 4, 5, 6, 8 bits)
  std::optional<int> kv_value_bits;    // bits for values when they differ from keys
  int kv_group_size = 64;
  int64_t quantized_kv_start = 0;      // quantize once the offset passes this
  float temperature = 0.6f;
  float top_p = 1.0f;
  int top_k = 0;
  float min_p = 0.0f;
  std::optional<float> repetition_penalty;
  int repetition_context_size = 20;
  std::optional<float> presence_penalty;
  int presence_context_size = 20;
  std::optional<float> frequency_penalty;
  int frequency_context_size = 20;
  std::map<int32_t, float> logit_bias;
  int prefill_step_size = 512;
  std::optional<uint64_t> seed;
  // XTC ("exclude top choices", mlx-lm): with probability xtc_probability, drop every
  // token whose probability is >= xtc_threshold except the least likely of them
  // (special tokens are never dropped). 0 = off.
  float xtc_probability = 0.0f;
  float xtc_threshold = 0.0f;
  std::vector<int32_t> xtc_special_tokens;  // never dropped (generate() adds "\n" and EOS)
  // Custom logits processors (mlx-lm's logits_processors), applied in order after the
  // bias and penalties, before sampling: fn(tokens, logits) with the tokens of this
  // generation so far (its prompt, then the generated ones) and the logits [vocab] to
  // modify in place. Each call is one sampling step.
  std::vector<std::function<void(const std::vector<int32_t>&, std::vector<float>&)>> logits_processors;
  bool logprobs = false;  // report each token's log-probability
  int top_logprobs = 0;   // > 0: report this many alternatives per token
};

}  // namespace lmx::generate
