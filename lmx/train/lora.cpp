#include "lmx/train/lora.h"

#include <cmath>
#include <set>

#include "lmx/base/error.h"
#include "lmx/core/ops/random.h"

namespace lmx::train {

std::map<std::string, nn::Linear*> linear_layers(models::TransformerLM& model) {
  std::map<std::string, nn::Linear*> out;
  model.for_each_module([&](const std::string& path, nn::Module& m) {
    if (auto* l = dynamic_cast<nn::Linear*>(&m)) out[path] = l;
  });
  return out;
}

std::vector<autograd::Var*> LoraAdapters::parameters() {
  std::vector<autograd::Var*> out;
  for (auto& [name, pair] : layers) {
    out.push_back(&pair.a);
    out.push_back(&pair.b);
  }
  return out;
}

void LoraAdapters::attach(models::TransformerLM& model) const {
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
    it->second->set_lora(std::move(w));
  }
}

void LoraAdapters::detach(models::TransformerLM& model) {
  for (auto& [name, l] : linear_layers(model)) l->set_lora(nullptr);
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
                    autograd::Var(Tensor::zeros({config.rank, outf}), true)};
      out.layers.emplace(path, std::move(pair));
    }
  }
  for (const auto& k : config.keys) {
    if (!used_keys.count(k)) throw InvalidArgument("lora: key '" + k + "' matches no Linear layer of the blocks");
  }
  return out;
}

}  // namespace lmx::train
