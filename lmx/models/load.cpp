#include "lmx/models/load.h"

#include <string>
#include <tuple>

#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/core/backend.h"
#include "lmx/io/mapped_file.h"
#include "lmx/io/safetensors_tensor.h"
#include "lmx/models/config_reader.h"
#include "lmx/models/registry.h"
#include "lmx/models/tensor_parallel_model.h"
#include "lmx/models/ternary_weights.h"
#include "lmx/models/text_part.h"
#include "lmx/models/vlm/vision_language_model.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/mlp.h"

namespace lmx::models {
namespace {

// MLX "quantization": {"group_size", "bits", "mode", "<module path>": {...} | false}.
struct QuantSettings {
  bool present = false;
  int bits = 4;
  int group_size = 64;
  QuantMode mode = QuantMode::affine;
  const nlohmann::json* json = nullptr;
  std::string source;
};

// One module's bits, group size and mode.
struct ModuleQuant {
  int bits = 0, group_size = 0;
  QuantMode mode = QuantMode::affine;
};

QuantSettings read_quantization(const nlohmann::json& config, const std::string& source) {
  QuantSettings q;
  const nlohmann::json* j = nullptr;
  if (config.contains("quantization") && config["quantization"].is_object()) j = &config["quantization"];
  else if (config.contains("quantization_config") && config["quantization_config"].is_object() &&
           config["quantization_config"].contains("bits")) {
    j = &config["quantization_config"];
  }
  // OpenAI's MXFP4 checkpoints (gpt-oss): the experts' _blocks / _scales are MLX's mxfp4
  // (expert_weights.cpp), as mlx-lm reads quant_method "mxfp4".
  const bool openai_mxfp4 = !j && config.contains("quantization_config") && config["quantization_config"].is_object() &&
                            config["quantization_config"].value("quant_method", "") == "mxfp4";
  if (openai_mxfp4) j = &config["quantization_config"];
  if (!j) return q;
  ConfigReader r(*j, source + ": quantization");
  q.present = true;
  q.mode = openai_mxfp4 ? QuantMode::mxfp4
                        : parse_quant_mode(r.get_string("mode", "affine"), source + ": quantization.mode");
  // A mode's defaults as mlx-lm's quantize_model fills them in.
  auto [group, bits] = default_group_size_and_bits(q.mode);
  q.bits = static_cast<int>(r.get_int("bits", bits));
  q.group_size = static_cast<int>(r.get_int("group_size", group));
  q.json = j;
  q.source = source;
  return q;
}

// Bits, group size and mode for one module path (a per-layer entry overrides the
// defaults), or false when the config excludes it.
bool module_quantization(const QuantSettings& q, const std::string& path, ModuleQuant& out) {
  out = {q.bits, q.group_size, q.mode};
  if (!q.json) return true;
  auto it = q.json->find(path);
  if (it == q.json->end()) return true;
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_object()) {
    ConfigReader r(*it, q.source + ": quantization." + path);
    if (it->contains("mode")) {
      out.mode = parse_quant_mode(r.get_string("mode", "affine"), q.source + ": quantization." + path + ".mode");
      std::tie(out.group_size, out.bits) = default_group_size_and_bits(out.mode);
    }
    out.bits = static_cast<int>(r.get_int("bits", out.bits));
    out.group_size = static_cast<int>(r.get_int("group_size", out.group_size));
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
    out.emplace(name, io::tensor_of(info, std::move(owner)));
  }
  return out;
}

void load_weights(LanguageModel& model, WeightDict weights, const nlohmann::json& config,
                  const std::string& source) {
  // A vision-language model runs the whole checkpoint; a text model keeps its part.
  if (!dynamic_cast<const vlm::VisionLanguageModel*>(&model)) keep_text_part(config, weights);
  model.sanitize(weights);
  load_module_weights(model, std::move(weights), config, source, model.model_type());
}

void load_module_weights(nn::Module& model, WeightDict weights, const nlohmann::json& config,
                         const std::string& source, const std::string& architecture) {
  const QuantSettings q = read_quantization(config, source);
  const TernarySettings ternary = read_ternary(config, source);
  std::vector<std::string> problems;
  model.for_each_module([&](const std::string& path, nn::Module& m) {
    auto* linear = dynamic_cast<nn::Linear*>(&m);
    auto packed = weights.find(path + ".weight");
    if (ternary.present && linear &&
        (weights.count(path + ".weight_scale") || (packed != weights.end() && packed->second.dtype() == Dtype::u8))) {
      try {
        const int group = repack_ternary(weights, path, linear->out_features(), linear->in_features(), ternary);
        linear->quantize_for_load(2, group, QuantMode::affine);
        linear->set_int8_activations(true);
      } catch (const Error& err) {
        problems.push_back(err.what());
      }
      return;
    }
    if (!weights.count(path + ".scales")) return;
    ModuleQuant mq;
    try {
      if (!q.present || !module_quantization(q, path, mq)) {
        problems.push_back("'" + path + ".scales' present but config.json does not quantize '" + path + "'");
        return;
      }
      if (auto* l = dynamic_cast<nn::Linear*>(&m)) l->quantize_for_load(mq.bits, mq.group_size, mq.mode);
      else if (auto* e = dynamic_cast<nn::Embedding*>(&m)) e->quantize_for_load(mq.bits, mq.group_size, mq.mode);
      else if (auto* s = dynamic_cast<nn::SwitchLinear*>(&m)) s->quantize_for_load(mq.bits, mq.group_size, mq.mode);
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
    // Integer slots: packed words (u32) or the u8 scale codes of the floating-point modes.
    const Dtype want = p.name.ends_with(".scales") ? Dtype::u8 : Dtype::u32;
    bool dtype_ok = p.integer ? t.dtype() == want : is_floating(t.dtype());
    if (t.shape() != p.shape || !dtype_ok) {
      problems.push_back("'" + p.name + "' is " + describe(t) + ", expected " +
                         (p.integer ? std::string(dtype_name(want)) + " " : "float ") + shape_str(p.shape));
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
  if (options.tensor_parallel < 1) {
    throw InvalidArgument("tensor parallel: " + std::to_string(options.tensor_parallel) + " ranks (1 or more)");
  }
  if (options.tensor_parallel > 1) return {TensorParallelLM::load(dir, options), io::ModelFolder::open(dir)};
  LoadedModel out{nullptr, io::ModelFolder::open(dir)};
  const std::string source = (dir / "config.json").string();
  ConfigReader config(out.folder.text_config(), source);
  WeightDict weights = read_weights(out.folder);
  out.model = is_text_part_only(out.folder.raw_config(), weights)
                  ? create_model(config)
                  : create_folder_model(ConfigReader(out.folder.raw_config(), source), config);
  load_weights(*out.model, std::move(weights), out.folder.raw_config(), dir.string());
  if (!options.device.is_cpu()) out.model->to(options.device);
  if (options.prepare) out.model->prepare_for_inference();
  return out;
}

}  // namespace lmx::models
