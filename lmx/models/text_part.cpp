#include "lmx/models/text_part.h"

#include <array>
#include <nlohmann/json.hpp>
#include <string_view>

namespace lmx::models {
namespace {

struct TextPart {
  std::string_view model_type;
  std::array<std::string_view, 4> dropped;  // prefixes of the parts lmx does not run ("" = none)
};

constexpr std::array<TextPart, 6> kTextParts = {{
    {"mistral3", {"vision_tower.", "multi_modal_projector.", "", ""}},
    {"gemma3n", {"vision_tower.", "audio_tower.", "embed_vision.", "embed_audio."}},
    {"gemma4", {"vision_tower.", "audio_tower.", "embed_vision.", "embed_audio."}},
    // Qwen3.5: the vision tower and the multi-token-prediction head.
    {"qwen3_5", {"visual.", "mtp.", "", ""}},
    {"qwen3_5_moe", {"visual.", "mtp.", "", ""}},
    // Llama 4 (Scout, Maverick): mlx-lm's "llama4" runs the text part the same way.
    {"llama4", {"vision_model.", "multi_modal_projector.", "", ""}},
}};

std::string text_name(const std::string& name) {
  constexpr std::string_view hub = "language_model.", v5 = "model.language_model.";
  if (name.starts_with(hub)) return name.substr(hub.size());  // language_model.model.X -> model.X
  if (name.starts_with(v5)) return "model." + name.substr(v5.size());
  return name;
}

const TextPart* text_part(const nlohmann::json& config) {
  auto type = config.find("model_type");
  if (type == config.end() || !type->is_string()) return nullptr;
  for (const TextPart& part : kTextParts) {
    if (part.model_type == type->get<std::string>()) return &part;
  }
  return nullptr;
}

bool dropped(const TextPart& part, const std::string& name) {
  for (std::string_view p : part.dropped) {
    if (p.empty()) continue;
    if (name.starts_with(p) || (name.starts_with("model.") && name.substr(6).starts_with(p))) return true;
  }
  return false;
}

}  // namespace

void keep_text_part(const nlohmann::json& config, WeightDict& weights) {
  const TextPart* part = text_part(config);
  if (!part) return;
  WeightDict text;
  for (auto& [name, t] : weights) {
    if (!dropped(*part, name)) text[text_name(name)] = t;
  }
  weights = std::move(text);
}

bool is_text_part_only(const nlohmann::json& config, const WeightDict& weights) {
  const TextPart* part = text_part(config);
  if (!part) return false;
  for (const auto& [name, t] : weights) {
    if (dropped(*part, name)) return false;
  }
  return true;
}

}  // namespace lmx::models
