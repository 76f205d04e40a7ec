#include "lmx/models/registry.h"

#include <algorithm>
#include <utility>

#include "lmx/base/error.h"
#include "lmx/models/llm/common.h"
#include "lmx/models/llm/gemma3n.h"
#include "lmx/models/llm/moe_families.h"
#include "lmx/models/recurrent/recurrent_models.h"
#include "lmx/models/vlm/vlm_families.h"

namespace lmx::models {
namespace {

using Builder = TransformerSpec (*)(const ConfigReader&);

const std::vector<std::pair<std::string, Builder>>& table() {
  static const std::vector<std::pair<std::string, Builder>> kTable = {
      {"llama", llm::llama},          {"mistral", llm::llama},     {"qwen2", llm::qwen2},
      {"qwen3", llm::qwen3},          {"qwen3_moe", llm::qwen3_moe}, {"mixtral", llm::mixtral},
      {"gemma", llm::gemma},          {"gemma2", llm::gemma2},     {"gemma3_text", llm::gemma3_text},
      {"phi3", llm::phi3},            {"smollm3", llm::smollm3},   {"granite", llm::granite},
      {"starcoder2", llm::starcoder2}, {"olmo2", llm::olmo2},
      // Mixtures of experts (lmx/models/llm/moe_families.h).
      {"qwen2_moe", llm::qwen2_moe},   {"olmoe", llm::olmoe},       {"phimoe", llm::phimoe},
      {"deepseek_v2", llm::deepseek_v2}, {"deepseek_v3", llm::deepseek_v3},
      // mlx-lm's aliases (MODEL_REMAPPING) of the attention families.
      {"kimi_k2", llm::deepseek_v3},   {"joyai_llm_flash", llm::deepseek_v3}, {"iquestcoder", llm::llama},
      {"glm4_moe", llm::glm4_moe},     {"gpt_oss", llm::gpt_oss},   {"ernie4_5_moe", llm::ernie4_5_moe},
      {"llama4_text", llm::llama4_text}, {"dbrx", llm::dbrx},
      // Issue 19, dense attention families.
      {"phi", llm::phi},               {"gpt_neox", llm::gpt_neox}, {"stablelm", llm::stablelm},
      {"gpt2", llm::gpt2},             {"gpt_bigcode", llm::gpt_bigcode}, {"cohere", llm::cohere},
      {"cohere2", llm::cohere2},       {"glm4", llm::glm4},         {"olmo3", llm::olmo3},
      {"exaone4", llm::exaone4},       {"ernie4_5", llm::ernie4_5}, {"helium", llm::helium},
      {"apertus", llm::apertus},       {"hunyuan_v1_dense", llm::hunyuan_v1_dense},
      {"bitnet", llm::bitnet},         {"ministral", llm::ministral}, {"nanochat", llm::nanochat},
      {"minicpm", llm::minicpm},
      // The language model of a vision-language folder whose text_config names no type of
      // its own (load.cpp keeps the text part of the weights: text_part.h).
      {"mistral3", llm::llama},
      {"llama4", llm::llama4_text},
  };
  return kTable;
}

// Families with their own module tree (recurrent and hybrid layers).
using ModelBuilder = std::unique_ptr<LanguageModel> (*)(const ConfigReader&);

const std::vector<std::pair<std::string, ModelBuilder>>& model_table() {
  static const std::vector<std::pair<std::string, ModelBuilder>> kTable = {
      {"mamba", recurrent::mamba},
      {"mamba2", recurrent::mamba2},
      {"nemotron_h", recurrent::nemotron_h},
      {"lfm2", recurrent::lfm2},
      {"qwen3_next", recurrent::qwen3_next},
      {"qwen3_5_text", recurrent::qwen3_5},
      {"qwen3_5_moe_text", recurrent::qwen3_5},
      // The language model of a Qwen3.5 folder (text_config; load.cpp keeps its weights).
      {"qwen3_5", recurrent::qwen3_5},
      {"qwen3_5_moe", recurrent::qwen3_5},
      {"jamba", recurrent::jamba},
      {"granitemoehybrid", recurrent::granitemoehybrid},
      {"falcon_h1", recurrent::falcon_h1},
      {"lfm2_moe", recurrent::lfm2_moe},
      {"recurrent_gemma", recurrent::recurrent_gemma},
      // AltUp streams, per-layer inputs and KV sharing around Gemma 3 layers.
      {"gemma3n_text", llm::gemma3n_text},
      // The language model of a Gemma 3n folder (text_config; load.cpp keeps its weights).
      {"gemma3n", llm::gemma3n_text},
      // Gemma 3n's model with a per-layer scalar instead of AltUp / LAuReL.
      {"gemma4_text", llm::gemma4_text},
      {"gemma4", llm::gemma4_text},
  };
  return kTable;
}

// Vision-language models: built from config.json as it stands and the text config.
using VlmBuilder = std::unique_ptr<LanguageModel> (*)(const ConfigReader& raw, const ConfigReader& text);

const std::vector<std::pair<std::string, VlmBuilder>>& vlm_table() {
  static const std::vector<std::pair<std::string, VlmBuilder>> kTable = {
      {"llava", vlm::llava},
      {"qwen2_vl", vlm::qwen2_vl},
      {"qwen2_5_vl", vlm::qwen2_5_vl},
      {"gemma3", vlm::gemma3},
      {"paligemma", vlm::paligemma},
      {"idefics3", vlm::idefics3},
      {"smolvlm", vlm::smolvlm},
      {"mistral3", vlm::mistral3},
      {"qwen3_vl", vlm::qwen3_vl},
      {"qwen3_vl_moe", vlm::qwen3_vl_moe},
  };
  return kTable;
}

}  // namespace

std::unique_ptr<LanguageModel> create_folder_model(const ConfigReader& raw, const ConfigReader& text) {
  const std::string type = raw.get_string("model_type", "");
  for (const auto& [name, build] : vlm_table()) {
    if (name == type) return build(raw, text);
  }
  return create_model(text);
}

std::unique_ptr<LanguageModel> create_model(const ConfigReader& config) {
  const std::string type = config.get_string("model_type", "");
  if (type.empty()) config.fail("model_type", "is missing");
  for (const auto& [name, build] : table()) {
    if (name == type) return std::make_unique<TransformerLM>(build(config));
  }
  for (const auto& [name, build] : model_table()) {
    if (name == type) return build(config);
  }
  for (const auto& [name, build] : vlm_table()) {
    if (name == type) throw Unsupported(config.source() + ": '" + type + "' is a vision-language model: load its folder");
  }
  std::string known;
  for (const auto& name : supported_model_types()) known += (known.empty() ? "" : ", ") + name;
  throw Unsupported(config.source() + ": model_type '" + type + "' is not supported (supported: " + known + ")");
}

std::vector<std::string> supported_model_types() {
  std::vector<std::string> out;
  for (const auto& [name, build] : table()) out.push_back(name);
  for (const auto& [name, build] : model_table()) out.push_back(name);
  for (const auto& [name, build] : vlm_table()) {
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);  // mistral3: both
  }
  return out;
}

}  // namespace lmx::models
