// Config reading shared by the LLM architectures: the Llama-style base every family
// starts from, RoPE parameters (transformers v4 "rope_scaling"/"rope_theta" and v5
// "rope_parameters"), and per-layer attention types.
#pragma once

#include <string>
#include <vector>

#include "lmx/models/config_reader.h"
#include "lmx/models/transformer.h"

namespace lmx::models::llm {

// vocab, hidden, layers of gated-MLP attention blocks with RMSNorm, heads / kv heads /
// head_dim, the default rope, tie_word_embeddings (default false), biases off.
TransformerSpec llama_like(const ConfigReader& c, const std::string& model_type);

// RoPE settings for rotary dimension `dim`; `layer_type` picks a per-type entry of a
// v5 "rope_parameters" ({"full_attention": {...}, "sliding_attention": {...}}).
nn::RopeConfig read_rope(const ConfigReader& c, int64_t dim, const std::string& layer_type = "");

// "layer_types" when present, else `fallback(i)` for each layer.
std::vector<std::string> read_layer_types(const ConfigReader& c, int64_t layers,
                                          std::string (*fallback)(const ConfigReader&, int64_t));

// Architecture builders (one file each).
TransformerSpec llama(const ConfigReader& c);
TransformerSpec qwen2(const ConfigReader& c);
TransformerSpec qwen3(const ConfigReader& c);
TransformerSpec qwen3_moe(const ConfigReader& c);
TransformerSpec mixtral(const ConfigReader& c);
TransformerSpec gemma(const ConfigReader& c);
TransformerSpec gemma2(const ConfigReader& c);
TransformerSpec gemma3_text(const ConfigReader& c);
TransformerSpec phi3(const ConfigReader& c);
TransformerSpec smollm3(const ConfigReader& c);
TransformerSpec granite(const ConfigReader& c);
TransformerSpec starcoder2(const ConfigReader& c);
TransformerSpec olmo2(const ConfigReader& c);

}  // namespace lmx::models::llm
