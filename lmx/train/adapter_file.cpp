#include "lmx/train/adapter_file.h"

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>

#include "lmx/base/error.h"
#include "lmx/base/json_nesting.h"
#include "lmx/io/atomic_write.h"
#include "lmx/io/safetensors.h"
#include "lmx/io/safetensors_writer.h"
#include "lmx/train/peft_adapter.h"
#include "lmx/train/split_adapters.h"

namespace lmx::train {

namespace fs = std::filesystem;

void save_adapters(const fs::path& dir, const LoraAdapters& adapters, const nlohmann::json& extra,
                   const std::string& weights_name) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError("cannot create adapter folder " + dir.string() + ": " + ec.message());
  io::SafetensorsWriter writer;
  std::vector<Tensor> keep;  // contiguous f32 copies alive until write() returns
  auto add = [&](const std::string& name, const autograd::Var& var) {
    Tensor t = var.value().to(Device::cpu()).to(Dtype::f32).contiguous();
    keep.push_back(t);
    writer.add(name, Dtype::f32, t.shape(), t.raw_data(), t.nbytes());
  };
  for (const auto& [name, pair] : adapters.layers) {
    add(name + ".lora_a", pair.a);
    add(name + ".lora_b", pair.b);
    if (pair.m.defined()) add(name + ".m", pair.m);
  }
  for (const auto& [name, w] : adapters.weights) add(name, w);
  writer.write(dir / weights_name);
  nlohmann::json config = extra.is_object() ? extra : nlohmann::json::object();
  config["fine_tune_type"] = fine_tune_type_name(adapters.config.type);
  config["num_layers"] = adapters.config.num_layers;
  nlohmann::json lp = {{"rank", adapters.config.rank},
                       {"scale", adapters.config.scale},
                       {"dropout", adapters.config.dropout}};
  if (!adapters.config.keys.empty()) lp["keys"] = adapters.config.keys;
  config["lora_parameters"] = lp;
  io::write_file_atomic(dir / "adapter_config.json", config.dump(2) + "\n");
}

nlohmann::json read_json_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot read " + path.string());
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw IoError("cannot read " + path.string());
  check_json_nesting(text, path.string());
  nlohmann::json out;
  try {
    out = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path.string() + ": not valid JSON (" + e.what() + ")");
  }
  if (!out.is_object()) throw FormatError(path.string() + ": not a JSON object");
  return out;
}

Tensor read_f32(const io::TensorInfo& info) {
  std::vector<std::byte> bytes(info.data, info.data + info.nbytes);  // copied: the file may be unaligned
  Tensor t = Tensor::empty(info.shape, info.dtype);
  t.copy_from_host(bytes.data(), bytes.size());
  return t.to(Dtype::f32);
}

LoraAdapters adapters_from_tensors(const std::string& file, const LoraConfig& config,
                                   const std::map<std::string, LayerTensors>& layers, std::vector<std::string> problems,
                                   models::TransformerLM& model) {
  auto linears = linear_layers(model);
  const bool dora = config.type == FineTuneType::dora;
  auto shape_problem = [&](const std::string& name, const Tensor& t, const Shape& want, const nn::Linear& l) {
    if (t.shape() == want) return;
    problems.push_back("'" + name + "': shape " + shape_str(t.shape()) + " does not fit the layer (in " +
                       std::to_string(l.in_features()) + ", out " + std::to_string(l.out_features()) + ", rank " +
                       std::to_string(config.rank) + ")");
  };
  for (const auto& [layer, t] : layers) {
    auto it = linears.find(layer);
    if (it == linears.end()) {
      problems.push_back("the model has no Linear layer '" + layer + "'");
      continue;
    }
    const nn::Linear& l = *it->second;
    if (!t.a.defined()) problems.push_back("'" + layer + ".lora_a' is missing");
    if (!t.b.defined()) problems.push_back("'" + layer + ".lora_b' is missing");
    if (dora && !t.m.defined()) problems.push_back("'" + layer + ".m' (DoRA magnitude) is missing");
    if (!dora && t.m.defined()) problems.push_back("'" + layer + ".m': a DoRA magnitude in " + std::string(fine_tune_type_name(config.type)) + " adapters");
    if (t.a.defined()) shape_problem(layer + ".lora_a", t.a, {l.in_features(), config.rank}, l);
    if (t.b.defined()) shape_problem(layer + ".lora_b", t.b, {config.rank, l.out_features()}, l);
    if (dora && t.m.defined()) shape_problem(layer + ".m", t.m, {l.out_features()}, l);
  }
  if (layers.empty() && problems.empty()) problems.push_back("no adapters in the file");
  if (!problems.empty()) {
    std::string msg = file + ": adapters do not fit this model:";
    for (const auto& p : problems) msg += "\n  " + p;
    throw FormatError(msg);
  }
  LoraAdapters out;
  out.config = config;
  for (const auto& [layer, t] : layers) {
    out.layers.emplace(layer, LoraPair{autograd::Var(t.a, true), autograd::Var(t.b, true),
                                       dora ? autograd::Var(t.m, true) : autograd::Var()});
  }
  out.to(model_device(model));
  return out;
}

namespace {

// Full fine-tuning's file: parameters of the model by name, each of its shape.
LoraAdapters read_full_weights(const io::SafetensorsFile& file, const LoraConfig& config, models::TransformerLM& model) {
  std::map<std::string, Shape> shapes;
  for (const auto& slot : model.parameters()) {
    if (slot.tensor->defined() && !slot.integer) shapes[slot.name] = slot.tensor->shape();
  }
  std::vector<std::string> problems;
  LoraAdapters out;
  out.config = config;
  for (const auto& info : file.tensors()) {
    auto it = shapes.find(info.name);
    if (it == shapes.end()) {
      problems.push_back("'" + info.name + "': the model has no (dense) parameter of that name");
    } else if (!is_floating(info.dtype) || Shape(info.shape) != it->second) {
      problems.push_back("'" + info.name + "': " + std::string(dtype_name(info.dtype)) + " " + shape_str(info.shape) +
                         ", the model's is a float " + shape_str(it->second));
    } else {
      out.weights.emplace(info.name, autograd::Var(read_f32(info), true));
    }
  }
  if (out.weights.empty() && problems.empty()) problems.push_back("no weights in the file");
  if (!problems.empty()) {
    std::string msg = file.name() + ": weights do not fit this model:";
    for (const auto& p : problems) msg += "\n  " + p;
    throw FormatError(msg);
  }
  out.to(model_device(model));
  return out;
}

}  // namespace

LoraConfig read_adapter_config(const fs::path& dir) {
  const fs::path config_path = dir / "adapter_config.json";
  const nlohmann::json config = read_json_file(config_path);
  LoraConfig out;
  try {
    const std::string type = config.value("fine_tune_type", "lora");
    try {
      out.type = parse_fine_tune_type(type);
    } catch (const InvalidArgument&) {
      throw Unsupported(config_path.string() + ": fine_tune_type '" + type + "' is not supported (lora, dora, full)");
    }
    out.num_layers = config.value("num_layers", int64_t{16});
    const nlohmann::json lp = config.value("lora_parameters", nlohmann::json::object());
    out.rank = lp.value("rank", int64_t{8});
    out.scale = lp.value("scale", 20.0f);
    out.dropout = lp.value("dropout", 0.0f);
    if (lp.contains("keys") && lp["keys"].is_array()) out.keys = lp["keys"].get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(config_path.string() + ": " + e.what());
  }
  if (out.rank <= 0 && out.type != FineTuneType::full) {
    throw FormatError(config_path.string() + ": lora_parameters.rank must be positive, got " + std::to_string(out.rank));
  }
  return out;
}

void check_adapter_folder(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw IoError("adapters: no folder " + dir.string());
}

LoraAdapters load_adapters(const fs::path& dir, models::TransformerLM& model, const std::string& weights_name) {
  check_adapter_folder(dir);
  if (is_peft_adapter(dir)) return load_peft_adapters(dir, model);
  const LoraConfig config = read_adapter_config(dir);
  io::SafetensorsFile file = io::SafetensorsFile::open(dir / weights_name);
  if (config.type == FineTuneType::full) return read_full_weights(file, config, model);
  std::vector<std::string> problems;
  std::map<std::string, LayerTensors> layers;
  for (const auto& info : file.tensors()) {
    const size_t dot = info.name.rfind('.');
    const std::string suffix = dot == std::string::npos ? "" : info.name.substr(dot + 1);
    if (suffix != "lora_a" && suffix != "lora_b" && suffix != "m") {
      problems.push_back("unexpected tensor '" + info.name + "'");
      continue;
    }
    if (!is_floating(info.dtype)) {
      problems.push_back("'" + info.name + "': must be a float tensor, got " + std::string(dtype_name(info.dtype)));
      continue;
    }
    LayerTensors& t = layers[info.name.substr(0, dot)];
    (suffix == "lora_a" ? t.a : suffix == "lora_b" ? t.b : t.m) = read_f32(info);
  }
  return adapters_from_tensors(file.name(), config, layers, problems, model);
}

void resume_adapters(const fs::path& path, LoraAdapters& adapters) {
  io::SafetensorsFile file = io::SafetensorsFile::open(path);
  std::vector<std::string> problems;
  std::vector<std::pair<autograd::Var*, Tensor>> values;
  const auto params = adapters.named_parameters();
  std::set<std::string> names;
  for (const auto& [name, var] : params) names.insert(name);
  for (const auto& info : file.tensors()) {
    if (!names.count(info.name)) problems.push_back("'" + info.name + "' is not one of these adapters' tensors");
  }
  for (auto& [name, var] : params) {
    const io::TensorInfo* info = file.find(name);
    if (!info) {
      problems.push_back("'" + name + "' is missing");
    } else if (!is_floating(info->dtype) || Shape(info->shape) != var->shape()) {
      problems.push_back("'" + name + "': " + std::string(dtype_name(info->dtype)) + " " + shape_str(info->shape) +
                         ", training needs a float " + shape_str(var->shape()));
    } else {
      values.emplace_back(var, read_f32(*info));
    }
  }
  if (!problems.empty()) {
    std::string msg = path.string() + ": cannot resume these adapters (same --fine-tune-type, --rank, --num-layers and --keys?):";
    for (const auto& p : problems) msg += "\n  " + p;
    throw FormatError(msg);
  }
  for (auto& [var, value] : values) var->set_value(value.to(var->value().device()));
}

void attach_adapters(models::LanguageModel& model, const fs::path& dir) {
  if (auto* split = dynamic_cast<models::TensorParallelLM*>(&model)) {
    attach_split_adapters(*split, dir);
    return;
  }
  auto* t = dynamic_cast<models::TransformerLM*>(&model);
  if (!t) throw Unsupported("adapters: model type '" + model.model_type() + "' takes no adapters yet");
  load_adapters(dir, *t).attach(*t);
}

}  // namespace lmx::train
