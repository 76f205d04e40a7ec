#include "lmx/train/peft_adapter.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "lmx/base/error.h"
#include "lmx/io/atomic_write.h"
#include "lmx/io/safetensors.h"
#include "lmx/io/safetensors_writer.h"
#include "lmx/train/adapter_file.h"

namespace lmx::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPrefix = "base_model.model.";
constexpr const char* kWeights = "adapter_model.safetensors";

// "model.layers.3.self_attn.q_proj" -> 3 and "self_attn.q_proj" (-1 when not in a block).
std::pair<int64_t, std::string> block_and_key(const std::string& layer) {
  const std::string blocks = "model.layers.";
  if (layer.compare(0, blocks.size(), blocks) != 0) return {-1, layer};
  const size_t dot = layer.find('.', blocks.size());
  if (dot == std::string::npos) return {-1, layer};
  try {
    return {std::stoll(layer.substr(blocks.size(), dot - blocks.size())), layer.substr(dot + 1)};
  } catch (const std::exception&) {
    return {-1, layer};
  }
}

LoraConfig read_peft_config(const fs::path& path) {
  const nlohmann::json c = read_json_file(path);
  const std::string file = path.string();
  auto unsupported = [&](const std::string& field, const std::string& why) {
    throw Unsupported(file + ": " + field + " " + why + " is not supported");
  };
  LoraConfig out;
  try {
    const std::string type = c.value("peft_type", "");
    if (type != "LORA") unsupported("peft_type", "'" + type + "' (only LORA)");
    if (!c.contains("r") || !c["r"].is_number_integer() || c["r"].get<int64_t>() <= 0) {
      throw FormatError(file + ": r must be a positive integer");
    }
    out.rank = c["r"].get<int64_t>();
    const double alpha = c.contains("lora_alpha") && c["lora_alpha"].is_number() ? c["lora_alpha"].get<double>() : 8.0;
    const bool rslora = c.value("use_rslora", false);
    out.scale = static_cast<float>(alpha / (rslora ? std::sqrt(static_cast<double>(out.rank)) : static_cast<double>(out.rank)));
    out.type = c.value("use_dora", false) ? FineTuneType::dora : FineTuneType::lora;
    out.dropout = c.contains("lora_dropout") && c["lora_dropout"].is_number() ? c["lora_dropout"].get<float>() : 0.0f;
    for (const char* field : {"fan_in_fan_out", "lora_bias", "use_qalora"}) {
      if (c.contains(field) && c[field].is_boolean() && c[field].get<bool>()) unsupported(field, "true");
    }
    for (const char* field : {"layer_replication", "trainable_token_indices"}) {
      if (c.contains(field) && !c[field].is_null()) unsupported(field, c[field].dump());
    }
    for (const char* field : {"rank_pattern", "alpha_pattern"}) {
      if (c.contains(field) && c[field].is_object() && !c[field].empty()) unsupported(field, "(per-module values)");
    }
    if (c.contains("bias") && c["bias"].is_string() && c["bias"] != "none") unsupported("bias", "'" + c["bias"].get<std::string>() + "'");
    if (c.contains("modules_to_save") && c["modules_to_save"].is_array() && !c["modules_to_save"].empty()) {
      unsupported("modules_to_save", c["modules_to_save"].dump());
    }
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(file + ": " + e.what());
  }
  return out;
}

}  // namespace

bool is_peft_adapter(const fs::path& dir) {
  return fs::exists(dir / kWeights) && !fs::exists(dir / "adapters.safetensors");
}

LoraAdapters load_peft_adapters(const fs::path& dir, models::TransformerLM& model) {
  LoraConfig config = read_peft_config(dir / "adapter_config.json");
  io::SafetensorsFile file = io::SafetensorsFile::open(dir / kWeights);
  std::vector<std::string> problems;
  std::map<std::string, LayerTensors> layers;
  const std::string prefix = kPrefix;
  for (const auto& info : file.tensors()) {
    const std::string& n = info.name;
    std::string layer, part;
    for (const char* suffix : {".lora_A.weight", ".lora_B.weight", ".lora_magnitude_vector.weight", ".lora_magnitude_vector"}) {
      const std::string s = suffix;
      if (n.size() > s.size() && n.ends_with(s)) {
        layer = n.substr(0, n.size() - s.size());
        part = s;
        break;
      }
    }
    if (part.empty() || layer.compare(0, prefix.size(), prefix) != 0) {
      problems.push_back("unexpected tensor '" + n + "' (not a " + prefix + "<layer>.lora_A / lora_B / lora_magnitude_vector)");
      continue;
    }
    layer = layer.substr(prefix.size());
    const bool magnitude = part.starts_with(".lora_magnitude_vector");
    if (!is_floating(info.dtype) || info.shape.size() != (magnitude ? 1u : 2u)) {
      problems.push_back("'" + n + "': must be a " + (magnitude ? "1" : "2") + "-D float tensor, got " +
                         std::string(dtype_name(info.dtype)) + " " + shape_str(info.shape));
      continue;
    }
    Tensor t = read_f32(info);
    LayerTensors& lt = layers[layer];
    if (magnitude) lt.m = t;
    else (part == ".lora_A.weight" ? lt.a : lt.b) = t.transpose(0, 1).contiguous();  // PEFT keeps nn.Linear's [out, in]
  }
  // The blocks and keys the adapters cover, as mlx-lm's config would name them.
  int64_t first = model.num_layers();
  std::set<std::string> keys;
  for (const auto& [layer, t] : layers) {
    auto [block, key] = block_and_key(layer);
    if (block >= 0) first = std::min(first, block);
    keys.insert(key);
  }
  config.num_layers = model.num_layers() - first;
  config.keys.assign(keys.begin(), keys.end());
  return adapters_from_tensors(file.name(), config, layers, problems, model);
}

void save_peft_adapters(const fs::path& dir, const LoraAdapters& adapters, const std::string& base_model_name) {
  if (adapters.config.type == FineTuneType::full || !adapters.weights.empty()) {
    throw Unsupported("PEFT export: full fine-tuning has no adapters (lmx fuse writes the trained model)");
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError("cannot create adapter folder " + dir.string() + ": " + ec.message());
  io::SafetensorsWriter writer;
  std::vector<Tensor> keep;
  auto add = [&](const std::string& name, const Tensor& value) {
    Tensor t = value.to(Device::cpu()).to(Dtype::f32).contiguous();
    keep.push_back(t);
    writer.add(kPrefix + name, Dtype::f32, t.shape(), t.raw_data(), t.nbytes());
  };
  std::set<std::string> targets;
  std::set<int64_t> blocks;
  for (const auto& [layer, pair] : adapters.layers) {
    add(layer + ".lora_A.weight", pair.a.value().transpose(0, 1));
    add(layer + ".lora_B.weight", pair.b.value().transpose(0, 1));
    if (pair.m.defined()) add(layer + ".lora_magnitude_vector", pair.m.value());
    auto [block, key] = block_and_key(layer);
    if (block >= 0) blocks.insert(block);
    targets.insert(key.substr(key.rfind('.') + 1));
  }
  writer.write(dir / kWeights);
  nlohmann::json config = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"base_model_name_or_path", base_model_name},
      {"r", adapters.config.rank},
      {"lora_alpha", static_cast<double>(adapters.config.scale) * static_cast<double>(adapters.config.rank)},
      {"lora_dropout", adapters.config.dropout},
      {"target_modules", std::vector<std::string>(targets.begin(), targets.end())},
      {"layers_to_transform", std::vector<int64_t>(blocks.begin(), blocks.end())},
      {"use_dora", adapters.config.type == FineTuneType::dora},
      {"use_rslora", false},
      {"fan_in_fan_out", false},
      {"bias", "none"},
      {"inference_mode", true},
      {"modules_to_save", nullptr},
      {"rank_pattern", nlohmann::json::object()},
      {"alpha_pattern", nlohmann::json::object()},
  };
  io::write_file_atomic(dir / "adapter_config.json", config.dump(2) + "\n");
}

}  // namespace lmx::train
