#include "lmx/train/adapter_file.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "lmx/base/error.h"
#include "lmx/io/atomic_write.h"
#include "lmx/io/safetensors.h"
#include "lmx/io/safetensors_writer.h"

namespace lmx::train {

namespace fs = std::filesystem;

void save_adapters(const fs::path& dir, const LoraAdapters& adapters, const nlohmann::json& extra,
                   const std::string& weights_name) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError("cannot create adapter folder " + dir.string() + ": " + ec.message());
  io::SafetensorsWriter writer;
  std::vector<Tensor> keep;  // contiguous f32 copies alive until write() returns
  for (const auto& [name, pair] : adapters.layers) {
    for (const auto& [suffix, var] : {std::pair<const char*, const autograd::Var*>{".lora_a", &pair.a},
                                      std::pair<const char*, const autograd::Var*>{".lora_b", &pair.b}}) {
      Tensor t = var->value().to(Device::cpu()).to(Dtype::f32).contiguous();
      keep.push_back(t);
      writer.add(name + suffix, Dtype::f32, t.shape(), t.raw_data(), t.nbytes());
    }
  }
  writer.write(dir / weights_name);
  nlohmann::json config = extra.is_object() ? extra : nlohmann::json::object();
  config["fine_tune_type"] = "lora";
  config["num_layers"] = adapters.config.num_layers;
  nlohmann::json lp = {{"rank", adapters.config.rank},
                       {"scale", adapters.config.scale},
                       {"dropout", adapters.config.dropout}};
  if (!adapters.config.keys.empty()) lp["keys"] = adapters.config.keys;
  config["lora_parameters"] = lp;
  io::write_file_atomic(dir / "adapter_config.json", config.dump(2) + "\n");
}

LoraAdapters load_adapters(const fs::path& dir, models::TransformerLM& model) {
  const fs::path config_path = dir / "adapter_config.json", weights_path = dir / "adapters.safetensors";
  std::ifstream in(config_path);
  if (!in) throw IoError("cannot read " + config_path.string());
  nlohmann::json config;
  try {
    in >> config;
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(config_path.string() + ": not valid JSON (" + e.what() + ")");
  }
  LoraAdapters out;
  try {
    const std::string type = config.value("fine_tune_type", "lora");
    if (type != "lora") throw Unsupported(config_path.string() + ": fine_tune_type '" + type + "' is not supported (lora)");
    out.config.num_layers = config.value("num_layers", int64_t{16});
    const nlohmann::json lp = config.value("lora_parameters", nlohmann::json::object());
    out.config.rank = lp.value("rank", int64_t{8});
    out.config.scale = lp.value("scale", 20.0f);
    out.config.dropout = lp.value("dropout", 0.0f);
    if (lp.contains("keys") && lp["keys"].is_array()) out.config.keys = lp["keys"].get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(config_path.string() + ": " + e.what());
  }
  io::SafetensorsFile file = io::SafetensorsFile::open(weights_path);
  auto linears = linear_layers(model);
  std::vector<std::string> problems;
  std::map<std::string, std::pair<Tensor, Tensor>> found;
  for (const auto& info : file.tensors()) {
    const bool is_a = info.name.size() > 7 && info.name.ends_with(".lora_a");
    const bool is_b = info.name.size() > 7 && info.name.ends_with(".lora_b");
    if (!is_a && !is_b) {
      problems.push_back("unexpected tensor '" + info.name + "'");
      continue;
    }
    const std::string layer = info.name.substr(0, info.name.size() - 7);
    auto it = linears.find(layer);
    if (it == linears.end()) {
      problems.push_back("'" + info.name + "': the model has no Linear layer '" + layer + "'");
      continue;
    }
    if (!is_floating(info.dtype) || info.shape.size() != 2) {
      problems.push_back("'" + info.name + "': must be a 2-D float tensor, got " + std::string(dtype_name(info.dtype)) +
                         " " + shape_str(info.shape));
      continue;
    }
    const int64_t want_rows = is_a ? it->second->in_features() : info.shape[0];
    const int64_t want_cols = is_a ? info.shape[1] : it->second->out_features();
    if (info.shape[0] != want_rows || info.shape[1] != want_cols || info.shape[is_a ? 1 : 0] != out.config.rank) {
      problems.push_back("'" + info.name + "': shape " + shape_str(info.shape) + " does not fit the layer (in " +
                         std::to_string(it->second->in_features()) + ", out " +
                         std::to_string(it->second->out_features()) + ", rank " + std::to_string(out.config.rank) + ")");
      continue;
    }
    std::vector<std::byte> bytes(info.data, info.data + info.nbytes);  // copied: the file may be unaligned
    Tensor t = Tensor::empty(info.shape, info.dtype);
    t.copy_from_host(bytes.data(), bytes.size());
    (is_a ? found[layer].first : found[layer].second) = t.to(Dtype::f32);
  }
  for (const auto& [layer, pair] : found) {
    if (!pair.first.defined()) problems.push_back("'" + layer + ".lora_a' is missing");
    if (!pair.second.defined()) problems.push_back("'" + layer + ".lora_b' is missing");
  }
  if (found.empty() && problems.empty()) problems.push_back("no adapters in the file");
  if (!problems.empty()) {
    std::string msg = weights_path.string() + ": adapters do not fit this model:";
    for (const auto& p : problems) msg += "\n  " + p;
    throw FormatError(msg);
  }
  for (auto& [layer, pair] : found) out.layers.emplace(layer, LoraPair{autograd::Var(pair.first, true), autograd::Var(pair.second, true)});
  return out;
}

void attach_adapters(models::LanguageModel& model, const fs::path& dir) {
  auto* t = dynamic_cast<models::TransformerLM*>(&model);
  if (!t) throw Unsupported("adapters: model type '" + model.model_type() + "' takes no adapters yet");
  load_adapters(dir, *t).attach(*t);
}

}  // namespace lmx::train
