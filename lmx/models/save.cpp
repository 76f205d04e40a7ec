#include "lmx/models/save.h"

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/io/atomic_write.h"
#include "lmx/io/safetensors_writer.h"
#include "lmx/models/load.h"
#include "lmx/models/ternary_weights.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/mlp.h"

namespace lmx::models {
namespace fs = std::filesystem;
namespace {

bool is_tokenizer_file(const std::string& name) {
  return name == "tokenizer.json" || name == "tokenizer_config.json" || name == "special_tokens_map.json" ||
         name == "tokenizer.model" || name == "chat_template.jinja" || name == "chat_template.json" ||
         name == "generation_config.json" || name == "vocab.json" || name == "merges.txt" ||
         name == "added_tokens.json" || name.ends_with(".tiktoken");
}

// The MLX tensors of every quantized layer by parameter name. Prepared layers hold only
// their packed copy (their parameter slots are empty), so these are unpacked from it,
// bit for bit what was loaded or quantized.
std::map<std::string, Tensor> quantized_tensors(nn::Module& model) {
  std::map<std::string, Tensor> out;
  model.for_each_module([&](const std::string& path, nn::Module& m) {
    const nn::WeightMatrix* matrix = nullptr;
    if (auto* l = dynamic_cast<nn::Linear*>(&m)) matrix = &l->weight();
    if (auto* e = dynamic_cast<nn::Embedding*>(&m)) matrix = &e->weight();
    auto* s = dynamic_cast<nn::SwitchLinear*>(&m);
    QuantizedWeight q;
    if (auto* l = dynamic_cast<nn::Linear*>(&m); l && l->int8_activations() && matrix->quantized()) {
      // BitNet's ternary layers go back to their packed form (ternary_weights.h).
      const PackedTernary p = pack_ternary(matrix->quant().mlx_layout(), nn::join_path(path, "weight"));
      out[nn::join_path(path, "weight")] = p.weight;
      out[nn::join_path(path, "scales")] = Tensor();  // not saved
      out[nn::join_path(path, "biases")] = Tensor();
      out[nn::join_path(path, "weight_scale")] = p.weight_scale;
      return;
    }
    if (matrix && matrix->quantized())
      q = matrix->quant().mlx_layout();
    else if (s && s->quantized())
      q = s->mlx_layout();
    else
      return;
    out[nn::join_path(path, "weight")] = q.w;
    out[nn::join_path(path, "scales")] = q.scales;
    if (q.biases.defined()) out[nn::join_path(path, "biases")] = q.biases;
  });
  return out;
}

}  // namespace

void save_model(nn::Module& model, const fs::path& source_dir, const fs::path& out_dir,
                const SaveOptions& options) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) throw IoError("convert: cannot create " + out_dir.string() + ": " + ec.message());
  if (fs::equivalent(source_dir, out_dir, ec)) throw InvalidArgument("convert: --out must differ from the source");

  // Weights, in registration order, split into shards.
  std::vector<std::pair<std::string, Tensor>> tensors;
  const std::map<std::string, Tensor> quantized = quantized_tensors(model);
  for (auto& p : model.parameters()) {
    auto q = quantized.find(p.name);
    Tensor t = q != quantized.end() ? q->second : *p.tensor;
    if (!t.defined()) continue;
    if (options.dtype && is_floating(t.dtype())) t = t.to(*options.dtype);
    tensors.emplace_back(p.name, t.contiguous());
    // A ternary layer's scale (one f32, kept at full precision) follows its packed weight.
    if (p.name.ends_with(".weight")) {
      auto s = quantized.find(p.name + "_scale");
      if (s != quantized.end()) tensors.emplace_back(s->first, s->second);
    }
  }
  std::vector<std::vector<size_t>> shards(1);
  size_t current = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const size_t n = tensors[i].second.nbytes();
    if (current > 0 && current + n > options.shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(i);
    current += n;
  }
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  size_t total = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file = shards.size() == 1 ? "model.safetensors"
                                                : "model-" + std::string(5 - std::to_string(s + 1).size(), '0') +
                                                      std::to_string(s + 1) + "-of-" +
                                                      std::string(5 - std::to_string(shards.size()).size(), '0') +
                                                      std::to_string(shards.size()) + ".safetensors";
    io::SafetensorsWriter w;
    w.set_metadata("format", "mlx");
    for (size_t i : shards[s]) {
      const auto& [name, t] = tensors[i];
      w.add(name, t.dtype(), t.shape(), t.raw_data(), t.nbytes());
      weight_map[name] = file;
      total += t.nbytes();
    }
    w.write(out_dir / file);
  }
  if (shards.size() > 1) {
    nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    io::write_file_atomic(out_dir / "model.safetensors.index.json", index.dump(4));
  }

  // config.json: the source's, plus the quantization entry.
  nlohmann::ordered_json config;
  {
    std::ifstream in(source_dir / "config.json");
    if (!in) throw IoError("convert: cannot read " + (source_dir / "config.json").string());
    config = nlohmann::ordered_json::parse(in);
  }
  const bool ternary = !options.drop_quantization && config.contains("quantization_config") &&
                       config["quantization_config"].is_object() &&
                       config["quantization_config"].value("quant_method", "") == "bitnet";
  if (options.drop_quantization) {
    config.erase("quantization");
    config.erase("quantization_config");
  }
  if (options.quantization) {
    // mlx-lm's keys; the mode only when not affine, so affine configs read as before.
    auto entry = [](int group_size, int bits, QuantMode mode) {
      nlohmann::ordered_json e = {{"group_size", group_size}, {"bits", bits}};
      if (mode != QuantMode::affine) e["mode"] = quant_mode_name(mode);
      return e;
    };
    const QuantizeOptions& o = *options.quantization;
    nlohmann::ordered_json q = entry(o.group_size, o.bits, o.mode);
    for (const auto& [path, l] : options.quantization_per_layer) q[path] = entry(l.group_size, l.bits, l.mode);
    config["quantization"] = q;
    if (!ternary) config["quantization_config"] = q;  // a bitnet entry stays: it marks the ternary layers
  }
  if (ternary) set_packed_ternary_config(config);
  if (options.dtype) {
    const char* name = *options.dtype == Dtype::bf16 ? "bfloat16" : *options.dtype == Dtype::f16 ? "float16" : "float32";
    config["torch_dtype"] = name;
  }
  io::write_file_atomic(out_dir / "config.json", config.dump(4));

  for (const auto& entry : fs::directory_iterator(source_dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && is_tokenizer_file(name)) {
      fs::copy_file(entry.path(), out_dir / name, fs::copy_options::overwrite_existing, ec);
      if (ec) throw IoError("convert: cannot copy " + entry.path().string() + ": " + ec.message());
    }
  }
}

void save_quantized_copy(const fs::path& source_dir, const fs::path& out_dir, const QuantizeOptions& q) {
  LoadedModel m = load_model(source_dir, {.prepare = false});
  quantize_model(*m.model, q);
  SaveOptions so;
  so.quantization = q;
  fs::create_directories(out_dir);
  save_model(*m.model, source_dir, out_dir, so);
}

}  // namespace lmx::models
