// `lmx bench` for whole models: prefill and decode tokens/s (mean +- sd over runs) and
// peak memory, on a model folder or on random weights of a config's shape. As
// llama-bench: ppN runs an N-token prompt through an empty cache; tgN decodes N tokens
// from an empty cache (or after `depth` cached tokens, llama-bench's -d). With a draft
// model, also greedy speculative decoding: tokens/s, acceptance, the measured step costs
// and the speed-up they predict at acceptance rates 0.5 / 0.7 / 0.9. With batch B > 1,
// also B sequences decoded together after B prompts of ppN (greedy, one forward of
// B tokens per step): aggregate tokens/s.
#pragma once

#include <optional>
#include <string>

namespace lmx::cli {

struct ModelBenchArgs {
  std::string model;       // a model folder / repo id, or
  std::string config;      // a config.json: random weights of its shape
  bool quantize = false;
  int q_bits = 0;        // 0: the mode's default
  int q_group_size = 0;  // 0: the mode's default
  std::string q_mode = "affine";
  // Speculative decoding: a draft model (folder, or random weights of a config's shape,
  // made as the main model's) and the tokens it drafts per step.
  std::string draft_model;
  std::string draft_config;
  int num_draft_tokens = 3;
  std::string dtype = "bf16";
  int prompt_tokens = 512;
  int generation_tokens = 128;
  int depth = 0;  // decode starts after this many cached tokens (llama-bench's -d)
  int batch = 1;  // > 1: also decode this many sequences together (mlx-lm's -b): aggregate tokens/s
  int runs = 3;
  int threads = 0;
  std::string device = "cpu";
  int tensor_parallel = 1;
  bool json = false;
};

void run_model_bench(const ModelBenchArgs& args);

}  // namespace lmx::cli
