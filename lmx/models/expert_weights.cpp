#include "lmx/models/expert_weights.h"

#include <utility>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/core/ops/shape.h"

namespace lmx::models {

void stack_expert_weights(WeightDict& weights, const std::string& base, int64_t experts) {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> kExpertNames = {
      {"gate_proj", {"gate_proj", "w1"}}, {"up_proj", {"up_proj", "w3"}}, {"down_proj", {"down_proj", "w2"}}};
  for (const auto& [dst, aliases] : kExpertNames) {
    for (const char* suffix : {"weight", "scales", "biases"}) {
      for (const auto& src : aliases) {
        const std::string first = base + ".experts.0." + src + "." + suffix;
        if (!weights.count(first)) continue;
        std::vector<Tensor> parts;
        for (int64_t e = 0; e < experts; ++e) {
          const std::string key = base + ".experts." + std::to_string(e) + "." + src + "." + suffix;
          auto it = weights.find(key);
          if (it == weights.end()) throw FormatError("missing expert weight '" + key + "'");
          parts.push_back(it->second.unsqueeze(0));
          weights.erase(it);
        }
        weights[base + ".switch_mlp." + dst + "." + suffix] = ops::concat(parts, 0);
      }
    }
  }
}

}  // namespace lmx::models
