#include "lmx/models/load.h"

#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/core/backend.h"
#include "lmx/io/mapped_file.h"
#include "lmx/models/config_reader.h"
#include "lmx/models/registry.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/mlp.h"

namespace lmx::models {
namespace {

// MLX "quantization": {"group_size", "bits", "<module path>": {...} | false}.
struct QuantSettings {
  bool present = false;
  int bits = 4;
  int group_size = 64;
  const nlohmann::json* json = nullptr;
};

QuantSettings read_quantization(const nlohmann::json& config, const std::string& source) {
  QuantSettings q;
  const nlohmann::json* j = nullptr;
  if (config.contains("quantization") && config["quantization"].is_object()) j = &config["quantization"];
  else if (config.contains("quantization_config") && config["quantization_config"].is_object() &&
           config["quantization_config"].contains("bits")) {
    j = &config["quantization_config"];
  }
  if (!j) return q;
  ConfigReader r(*j, source + ": quantization");
  q.present = true;
  q.bits = static_cast<int>(r.get_int("bits", 4));
  q.group_size = static_cast<int>(r.get_int("group_size", 64));
  q.json = j;
  return q;
}

// Bits and group size for one module path, or false when the config excludes it.
bool module_quantization(const QuantSettings& q, const std::string& path, int& bits, int& group) {
  bits = q.bits;
  group = q.group_size;
  if (!q.json) return true;
  auto it = q.json->find(path);
  if (it == q.json->end()) return true;
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_object()) {
    bits = it->value("bits", bits);
    group = it->value("group_size", group);
  }
  return true;
}

std::string describe(const Tensor& t) {
  return std::string(dtype_name(t.dtype())) + " " + shape_str(t.shape());
}

}  // namespace

WeightDict read_weights(const io::ModelFolder& folder) {
  WeightDict out;
  for (const auto& [name, ref] : folder.weights()) {
    const io::TensorInfo& info = *ref.info;
    // Over a mapped file, each tensor's owner releases its pages when the tensor goes
    // (a quantized weight once packed, a weight cast to another dtype), so nothing stays
    // resident twice.
    const auto& mapping = ref.file->mapping();
    std::shared_ptr<const void> owner =
        mapping ? io::MappedFile::range_owner(mapping, info.file_offset, info.nbytes)
                : ref.file->owner();
    Tensor t =
        Tensor::wrap(const_cast<std::byte*>(info.data), info.shape, info.dtype, std::move(owner));
    if (!info.aligned) t = t.clone();  // kernels need naturally aligned elements
    out.emplace(name, std::move(t));
  }
  return out;
}

void load_weights(LanguageModel& model, WeightDict weights, const nlohmann::json& config,
                  const std::string& source) {
  model.sanitize(weights);
  load_module_weights(model, std::move(weights), config, source, model.model_type());
}

void load_module_weights(nn::Module& model, WeightDict weights, const nlohmann::json& config,
                         const std::string& source, const std::string& architecture) {
  const QuantSettings q = read_quantization(config, source);
  std::vector<std::string> problems;
  model.for_each_module([&](const std::string& path, nn::Module& m) {
    if (!weights.count(path + ".scales")) return;
    int bits = 0, group = 0;
    if (!q.present || !module_quantization(q, path, bits, group)) {
      problems.push_back("'" + path + ".scales' present but config.json does not quantize '" + path + "'");
      return;
    }
    try {
      if (auto* l = dynamic_cast<nn::Linear*>(&m)) l->quantize_for_load(bits, group);
      else if (auto* e = dynamic_cast<nn::Embedding*>(&m)) e->quantize_for_load(bits, group);
      else if (auto* s = dynamic_cast<nn::SwitchLinear*>(&m)) s->quantize_for_load(bits, group);
    } catch (const Error& err) {
      problems.push_back("'" + path + "': " + err.what());
    }
  });
  for (auto& p : model.parameters()) {
    auto it = weights.find(p.name);
    if (it == weights.end()) {
      if (!p.optional) problems.push_back("missing '" + p.name + "' (expected " + shape_str(p.shape) + ")");
      continue;
    }
    const Tensor& t = it->second;
    bool dtype_ok = p.integer ? t.dtype() == Dtype::u32 : is_floating(t.dtype());
    if (t.shape() != p.shape || !dtype_ok) {
      problems.push_back("'" + p.name + "' is " + describe(t) + ", expected " +
                         (p.integer ? "u32 " : "float ") + shape_str(p.shape));
    } else {
      *p.tensor = t;
    }
    weights.erase(it);
  }
  for (const auto& [name, t] : weights) problems.push_back("unused '" + name + "' (" + describe(t) + ")");
  if (!problems.empty()) {
    std::string msg = source + ": the weights do not match the " + architecture + " architecture (" +
                      std::to_string(problems.size()) + " problems):";
    for (const auto& p : problems) msg += "\n  " + p;
    throw FormatError(msg);
  }
}

WeightBytes weight_bytes(LanguageModel& model) {
  WeightBytes b;
  model.for_each_module([&](const std::string&, nn::Module& m) {
    size_t prepared = 0;
    if (auto* l = dynamic_cast<nn::Linear*>(&m)) prepared = l->weight().prepared_bytes();
    if (auto* e = dynamic_cast<nn::Embedding*>(&m)) prepared = e->weight().prepared_bytes();
    if (auto* s = dynamic_cast<nn::SwitchLinear*>(&m)) prepared = s->prepared_bytes();
    b.total += prepared;
    b.outside_allocator += prepared;
  });
  for (auto& p : model.parameters()) {
    if (!p.tensor->defined()) continue;
    b.total += p.tensor->nbytes();
    if (p.tensor->storage()->is_foreign()) b.outside_allocator += p.tensor->nbytes();
  }
  return b;
}

LoadedModel load_model(const std::filesystem::path& dir, const LoadOptions& options) {
  backend_for(options.device);  // an unavailable device fails before any file is read
  LoadedModel out{nullptr, io::ModelFolder::open(dir)};
  const std::string source = (dir / "config.json").string();
  ConfigReader config(out.folder.text_config(), source);
  out.model = create_model(config);
  load_weights(*out.model, read_weights(out.folder), out.folder.raw_config(), dir.string());
  if (!options.device.is_cpu()) out.model->to(options.device);
  if (options.prepare) out.model->prepare_for_inference();
  return out;
}

}  // namespace lmx::models
