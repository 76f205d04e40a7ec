#include "lmx/train/lora.h"

#include <cmath>
#include <set>
#include <utility>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/ops/random.h"
#include "lmx/core/ops/reduce.h"

namespace lmx::train {

std::map<std::string, nn::Linear*> linear_layers(models::TransformerLM& model) {
  std::map<std::string, nn::Linear*> out;
  model.for_each_module([&](const std::string& path, nn::Module& m) {
    if (auto* l = dynamic_cast<nn::Linear*>(&m)) out[path] = l;
  });
  return out;
}

FineTuneType parse_fine_tune_type(const std::string& name) {
  if (name == "lora") return FineTuneType::lora;
  if (name == "dora") return FineTuneType::dora;
  if (name == "full") return FineTuneType::full;
  throw InvalidArgument("fine-tune type: unknown '" + name + "' (lora, dora, full)");
}

const char* fine_tune_type_name(FineTuneType type) {
  switch (type) {
    case FineTuneType::lora: return "lora";
    case FineTuneType::dora: return "dora";
    case FineTuneType::full: return "full";
  }
  return "lora";
}

Tensor dense_f32(const nn::WeightMatrix& weight) {
  if (weight.quantized()) return weight.quant().dequantize().to(Dtype::f32);
  return weight.dense().to(Dtype::f32);
}

Tensor squared_row_norms(const nn::WeightMatrix& weight) { return ops::sum(ops::square(dense_f32(weight)), 1); }

Tensor dora_squared_row_norms(const nn::WeightMatrix& weight, const Tensor& a, const Tensor& b, float scale) {
  Tensor w = dense_f32(weight);
  Tensor adapted = ops::add(w, ops::mul(ops::matmul(a.to(w.device()), b.to(w.device())).transpose(0, 1),
                                        static_cast<double>(scale)));
  return ops::sum(ops::square(adapted), 1);
}

Tensor dora_row_norms(const nn::WeightMatrix& weight, const Tensor& a, const Tensor& b, float scale) {
  return ops::sqrt(dora_squared_row_norms(weight, a, b, scale));
}

std::vector<std::pair<std::string, const autograd::Var*>> LoraAdapters::named_parameters() const {
  std::vector<std::pair<std::string, const autograd::Var*>> out;
  for (const auto& [name, pair] : layers) {
    out.emplace_back(name + ".lora_a", &pair.a);
    out.emplace_back(name + ".lora_b", &pair.b);
    if (pair.m.defined()) out.emplace_back(name + ".m", &pair.m);
  }
  for (const auto& [name, w] : weights) out.emplace_back(name, &w);
  return out;
}

std::vector<std::pair<std::string, autograd::Var*>> LoraAdapters::named_parameters() {
  std::vector<std::pair<std::string, autograd::Var*>> out;
  for (const auto& [name, var] : std::as_const(*this).named_parameters()) {
    out.emplace_back(name, const_cast<autograd::Var*>(var));
  }
  return out;
}

LoraAdapters LoraAdapters::with_values(const std::function<Tensor(const std::string& name)>& value,
                                       bool trainable) const {
  auto leaf = [&](const std::string& name) { return autograd::Var(value(name), trainable); };
  LoraAdapters out;
  out.config = config;
  for (const auto& [name, pair] : layers) {
    out.layers.emplace(name, LoraPair{leaf(name + ".lora_a"), leaf(name + ".lora_b"),
                                      pair.m.defined() ? leaf(name + ".m") : autograd::Var()});
  }
  for (const auto& [name, w] : weights) out.weights.emplace(name, leaf(name));
  return out;
}

std::vector<autograd::Var*> LoraAdapters::parameters() {
  std::vector<autograd::Var*> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

void LoraAdapters::attach(models::TransformerLM& model, const SumSquares& sum_squares) const {
  if (!weights.empty()) {
    std::map<std::string, Tensor*> slots;
    for (auto& slot : model.parameters()) slots[slot.name] = slot.tensor;
    for (const auto& [name, w] : weights) {
      auto it = slots.find(name);
      if (it == slots.end()) throw InvalidArgument("full fine-tuning: the model has no parameter '" + name + "'");
      Tensor& t = *it->second;
      t = w.value().to(t.defined() ? t.device() : Device::cpu()).to(t.defined() ? t.dtype() : Dtype::f32);
    }
  }
  auto linears = linear_layers(model);
  for (const auto& [name, pair] : layers) {
    auto it = linears.find(name);
    if (it == linears.end()) throw InvalidArgument("lora: the model has no Linear layer '" + name + "'");
    const nn::WeightMatrix& base = it->second->weight();
    const Device device = base.quantized() ? base.quant().device() : base.dense().device();
    auto w = std::make_shared<nn::LoraWeights>();
    w->a = pair.a.value().to(device);
    w->b = pair.b.value().to(device);
    w->scale = config.scale;
    if (pair.m.defined()) {
      Tensor squares = dora_squared_row_norms(base, w->a, w->b, w->scale);
      if (sum_squares) squares = sum_squares(name, squares);
      w->magnitude_scale = ops::div(pair.m.value().to(device), ops::sqrt(squares));
    }
    it->second->set_lora(std::move(w));
  }
}

void LoraAdapters::detach(models::TransformerLM& model) {
  for (auto& [name, l] : linear_layers(model)) l->set_lora(nullptr);
}

void LoraAdapters::to(Device device) {
  for (auto& [name, v] : named_parameters()) {
    if (v->value().device() != device) v->set_value(v->value().to(device));
  }
}

Device model_device(models::TransformerLM& model) {
  for (const auto& [path, l] : linear_layers(model)) {
    const nn::WeightMatrix& w = l->weight();
    if (w.quantized()) return w.quant().device();
    if (w.dense().defined()) return w.dense().device();
  }
  return Device::cpu();
}

LoraAdapters make_lora(models::TransformerLM& model, const LoraConfig& config, uint64_t seed) {
  if (config.rank <= 0) throw InvalidArgument("lora: rank must be positive, got " + std::to_string(config.rank));
  if (config.dropout < 0.0f || config.dropout >= 1.0f) {
    throw InvalidArgument("lora: dropout must be in [0, 1), got " + std::to_string(config.dropout));
  }
  const int64_t total = model.num_layers();
  const int64_t n = config.num_layers < 0 ? total : config.num_layers;
  if (n == 0 || n > total) {
    throw InvalidArgument("lora: num_layers " + std::to_string(config.num_layers) + " for a model of " +
                          std::to_string(total) + " layers");
  }
  LoraAdapters out;
  out.config = config;
  out.config.num_layers = n;
  if (config.type == FineTuneType::full) {
    for (auto& slot : model.parameters()) {
      bool in_block = false;
      for (int64_t l = total - n; l < total && !in_block; ++l) {
        const std::string block = "model.layers." + std::to_string(l) + ".";
        in_block = slot.name.compare(0, block.size(), block) == 0;
      }
      if (!in_block || !slot.tensor->defined()) continue;
      if (slot.integer || slot.name.ends_with(".scales") || slot.name.ends_with(".biases")) {
        throw Unsupported("full fine-tuning: '" + slot.name +
                          "' is quantized; fine-tune a dense model (lmx fuse --dequantize makes one)");
      }
      out.weights.emplace(slot.name, autograd::Var(slot.tensor->to(Dtype::f32).clone(), true));
    }
    out.to(model_device(model));
    return out;
  }
  ops::RandomGenerator rng(seed);
  auto linears = linear_layers(model);
  std::set<std::string> used_keys;
  for (int64_t l = total - n; l < total; ++l) {
    const std::string block = "model.layers." + std::to_string(l) + ".";
    for (auto& [path, linear] : linears) {
      if (path.compare(0, block.size(), block) != 0) continue;
      const std::string key = path.substr(block.size());
      if (!config.keys.empty()) {
        bool chosen = false;
        for (const auto& k : config.keys) chosen = chosen || k == key;
        if (!chosen) continue;
      }
      used_keys.insert(key);
      const int64_t in = linear->in_features(), outf = linear->out_features();
      const float bound = 1.0f / std::sqrt(static_cast<float>(in));
      LoraPair pair{autograd::Var(rng.uniform({in, config.rank}, -bound, bound), true),
                    autograd::Var(Tensor::zeros({config.rank, outf}), true), autograd::Var()};
      if (config.type == FineTuneType::dora) {
        pair.m = autograd::Var(ops::sqrt(squared_row_norms(linear->weight())).to(Device::cpu()), true);
      }
      out.layers.emplace(path, std::move(pair));
    }
  }
  for (const auto& k : config.keys) {
    if (!used_keys.count(k)) throw InvalidArgument("lora: key '" + k + "' matches no Linear layer of the blocks");
  }
  out.to(model_device(model));
  return out;
}

}  // namespace lmx::train
