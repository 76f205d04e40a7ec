#include "lmx/train/weight_shares.h"

#include "lmx/base/error.h"
#include "lmx/core/ops/shape.h"
#include "lmx/models/tensor_parallel.h"

namespace lmx::train {
namespace {

using Kind = WeightShare::Kind;
using models::LayerSpec;

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

WeightShare of_kind(Kind kind, int axis = 0) {
  WeightShare s;
  s.kind = kind;
  s.axis = axis;
  return s;
}

bool holds(const std::vector<std::pair<int64_t, int64_t>>& ranges, int64_t i) {
  for (const auto& [b, e] : ranges) {
    if (i >= b && i < e) return true;
  }
  return false;
}

// A tensor of a layer no split rule slices: stacked experts, inside a split module
// (attention, MLP) or not.
WeightShare replicated(const models::TransformerSpec& spec, const std::string& name) {
  for (size_t l = 0; l < spec.layers.size(); ++l) {
    const std::string block = spec.body_name + "." + spec.layers_name + "." + std::to_string(l) + ".";
    const std::string mlp = block + spec.mlp_name + ".";
    const LayerSpec& ls = spec.layers[l];
    if (ls.moe && starts_with(name, mlp + ls.moe_options.experts_name + ".")) return of_kind(Kind::split);
    if (starts_with(name, block + spec.attn_name + ".") || starts_with(name, mlp)) return of_kind(Kind::partial);
  }
  return of_kind(Kind::whole);
}

// A column-parallel layer's outputs along `axis`: the rank's ranges; which of them other
// ranks hold too, and which a lower rank does (the norm counts those there).
WeightShare outputs(const std::vector<std::map<std::string, models::LayerSplit>>& plans, const std::string& layer,
                    int axis, int64_t whole_size, int rank) {
  WeightShare s = of_kind(Kind::outputs, axis);
  s.ranges = plans[static_cast<size_t>(rank)].at(layer).outputs;
  s.whole_size = whole_size;
  for (const auto& [b, e] : s.ranges) {
    for (int64_t i = b; i < e; ++i) {
      bool lower = false;
      for (int q = 0; q < static_cast<int>(plans.size()); ++q) {
        if (q == rank || !holds(plans[static_cast<size_t>(q)].at(layer).outputs, i)) continue;
        s.shared = true;
        lower = lower || q < rank;
      }
      s.counted.push_back(lower ? 0.0f : 1.0f);
    }
  }
  if (!s.shared) s.counted.clear();
  return s;
}

}  // namespace

std::map<std::string, WeightShare> weight_shares(const models::TransformerLM& whole,
                                                 const std::vector<std::string>& names, int rank, int world) {
  std::vector<std::map<std::string, models::LayerSplit>> plans;
  for (int r = 0; r < world; ++r) plans.push_back(models::shard_plan(whole, r, world));
  std::map<std::string, int64_t> out_features;
  const_cast<models::TransformerLM&>(whole).for_each_module([&](const std::string& path, nn::Module& m) {
    if (auto* l = dynamic_cast<nn::Linear*>(&m)) out_features[path] = l->out_features();
  });
  std::map<std::string, WeightShare> out;
  for (const std::string& name : names) {
    const size_t dot = name.rfind('.');
    const std::string layer = name.substr(0, dot), leaf = name.substr(dot + 1);
    auto it = plans[static_cast<size_t>(rank)].find(layer);
    WeightShare s;
    if (it == plans[static_cast<size_t>(rank)].end()) {
      s = replicated(whole.spec(), name);
    } else if (it->second.row) {
      if (leaf == "bias") {
        s.kind = Kind::rank0;
      } else if (leaf == "weight" || leaf == "lora_a") {  // [out, in] / [in, rank]: the inputs
        s = of_kind(Kind::split, leaf == "weight" ? 1 : 0);
      } else {
        s.kind = Kind::partial;  // lora_b, m
      }
    } else if (leaf == "lora_a") {
      s.kind = Kind::partial;
    } else {  // weight [out, in], bias / m [out], lora_b [rank, out]
      s = outputs(plans, layer, leaf == "lora_b" ? 1 : 0, out_features.at(layer), rank);
    }
    out.emplace(name, std::move(s));
  }
  return out;
}

LoraAdapters join_ranks(const std::vector<const LoraAdapters*>& ranks,
                        const std::vector<std::map<std::string, WeightShare>>& shares) {
  std::vector<std::map<std::string, Tensor>> values(ranks.size());
  for (size_t r = 0; r < ranks.size(); ++r) {
    for (const auto& [name, var] : ranks[r]->named_parameters()) {
      values[r][name] = var->value().to(Device::cpu()).to(Dtype::f32);
    }
  }
  auto join = [&](const std::string& name) {
    const WeightShare& s = shares.front().at(name);
    std::vector<Tensor> parts;
    if (s.kind == Kind::split) {
      for (const auto& v : values) parts.push_back(v.at(name));
    } else if (s.kind == Kind::outputs) {
      std::map<int64_t, std::pair<int64_t, Tensor>> pieces;  // by first index: (end, part); held twice: either
      for (size_t r = 0; r < ranks.size(); ++r) {
        int64_t local = 0;
        for (const auto& [b, e] : shares[r].at(name).ranges) {
          pieces.emplace(b, std::make_pair(e, values[r].at(name).slice(s.axis, local, local + e - b)));
          local += e - b;
        }
      }
      int64_t pos = 0;
      for (const auto& [b, piece] : pieces) {
        if (b != pos) {
          throw InternalError("tensor parallel: the ranks' outputs of " + name + " leave a gap at " +
                              std::to_string(pos));
        }
        parts.push_back(piece.second);
        pos = piece.first;
      }
      if (pos != s.whole_size) {
        throw InternalError("tensor parallel: the ranks hold " + std::to_string(pos) + " outputs of " + name);
      }
    } else {
      return values.front().at(name).contiguous();
    }
    return ops::concat(parts, s.axis).contiguous();
  };
  return ranks.front()->with_values(join, false);
}

Tensor rank_share(const Tensor& whole, const WeightShare& s, int rank, int world) {
  if (s.kind == Kind::split) {
    const int64_t n = whole.dim(s.axis) / world;
    return whole.slice(s.axis, rank * n, (rank + 1) * n).contiguous().clone();
  }
  if (s.kind != Kind::outputs) return whole.clone();
  std::vector<Tensor> parts;
  for (const auto& [b, e] : s.ranges) parts.push_back(whole.slice(s.axis, b, e));
  return ops::concat(parts, s.axis).contiguous().clone();
}

}  // namespace lmx::train
