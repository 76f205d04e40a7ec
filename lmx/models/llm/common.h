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

// LayerNorms (with biases unless `bias` is false) with epsilon `eps_key` (default
// 1e-5), for the blocks and the q/k norms.
void use_layer_norm(const ConfigReader& c, TransformerSpec& s, const std::string& eps_key, bool bias = true);

// A plain MLP in every layer: `down`(act(`up`(x))).
void use_plain_mlp(TransformerSpec& s, nn::Activation act, bool bias, const std::string& up,
                   const std::string& down);

// Rotary dims: head_dim times "partial_rotary_factor" (top level or in v5
// "rope_parameters"; GPT-NeoX's "rotary_pct"), `fallback` when none is given.
int64_t rotary_dims(const ConfigReader& c, int64_t head_dim, double fallback);

// Per-layer windows from "layer_types" (else `fallback(i)`): "sliding_attention" layers
// get "sliding_window", the others full attention, and no rope when `nope_on_full`
// (Cohere 2, EXAONE 4). A v5 "rope_parameters" keyed by layer type gives the sliding
// layers a rope of their own (s.ropes[1]).
void apply_layer_types(const ConfigReader& c, TransformerSpec& s,
                       std::string (*fallback)(const ConfigReader&, int64_t), bool nope_on_full = false);

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
TransformerSpec minicpm(const ConfigReader& c);
TransformerSpec starcoder2(const ConfigReader& c);
TransformerSpec olmo2(const ConfigReader& c);
TransformerSpec olmo3(const ConfigReader& c);
TransformerSpec helium(const ConfigReader& c);
TransformerSpec ministral(const ConfigReader& c);
TransformerSpec phi(const ConfigReader& c);
TransformerSpec gpt_neox(const ConfigReader& c);
TransformerSpec stablelm(const ConfigReader& c);
TransformerSpec gpt2(const ConfigReader& c);
TransformerSpec gpt_bigcode(const ConfigReader& c);
TransformerSpec cohere(const ConfigReader& c);
TransformerSpec cohere2(const ConfigReader& c);
TransformerSpec glm4(const ConfigReader& c);
TransformerSpec exaone4(const ConfigReader& c);
TransformerSpec ernie4_5(const ConfigReader& c);
TransformerSpec apertus(const ConfigReader& c);
TransformerSpec hunyuan_v1_dense(const ConfigReader& c);
TransformerSpec bitnet(const ConfigReader& c);
TransformerSpec nanochat(const ConfigReader& c);

}  // namespace lmx::models::llm
