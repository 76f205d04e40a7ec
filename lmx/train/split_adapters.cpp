#include "lmx/train/split_adapters.h"

#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/core/ops/shape.h"
#include "lmx/train/adapter_file.h"

namespace lmx::train {
namespace {

std::string n_of(int64_t v) { return std::to_string(v); }

// The slices [begin, end) of t along `axis`, joined in order.
Tensor ranges_of(const Tensor& t, int axis, const std::vector<std::pair<int64_t, int64_t>>& ranges,
                 const std::string& name) {
  std::vector<Tensor> parts;
  for (const auto& [b, e] : ranges) {
    if (e > t.dim(axis)) {
      throw InvalidArgument("tensor parallel: adapter " + name + " has " + n_of(t.dim(axis)) +
                            " outputs, the layer's split needs " + n_of(e));
    }
    parts.push_back(t.slice(axis, b, e));
  }
  return (parts.size() == 1 ? parts[0] : ops::concat(parts, axis)).contiguous();
}

[[noreturn]] void refuse_full() {
  throw Unsupported(
      "tensor parallel: full fine-tuning's weights on a split model are not supported yet "
      "(lmx fuse them into a copy of the model, then split that)");
}

}  // namespace

LoraAdapters shard_adapters(const LoraAdapters& whole, const std::map<std::string, models::LayerSplit>& plan, int rank,
                            int world) {
  if (!whole.weights.empty() || whole.config.type == FineTuneType::full) refuse_full();
  LoraAdapters out;
  out.config = whole.config;
  for (const auto& [layer, pair] : whole.layers) {
    LoraPair mine{autograd::Var(pair.a.value(), false), autograd::Var(pair.b.value(), false),
                  pair.m.defined() ? autograd::Var(pair.m.value(), false) : autograd::Var()};
    auto it = plan.find(layer);
    if (it != plan.end() && it->second.row) {
      const Tensor& a = pair.a.value();
      const int64_t in = a.dim(0);
      if (in % world != 0) {
        throw InvalidArgument("tensor parallel: adapter " + layer + ".lora_a has " + n_of(in) +
                              " rows (the layer's inputs), not divisible by " + n_of(world) + " ranks");
      }
      const int64_t w = in / world;
      mine.a = autograd::Var(a.slice(0, rank * w, (rank + 1) * w).contiguous(), false);
    } else if (it != plan.end()) {
      mine.b = autograd::Var(ranges_of(pair.b.value(), 1, it->second.outputs, layer + ".lora_b"), false);
      if (pair.m.defined())
        mine.m = autograd::Var(ranges_of(pair.m.value(), 0, it->second.outputs, layer + ".m"), false);
    }
    out.layers.emplace(layer, std::move(mine));
  }
  return out;
}

LoraAdapters load_whole_adapters(models::TensorParallelLM& model, const std::filesystem::path& dir) {
  models::TransformerLM* whole = model.whole();
  if (!whole) throw Unsupported("tensor parallel: a split model of random weights takes no adapters");
  // The whole model here holds no weights, which full fine-tuning's are checked against.
  const std::filesystem::path config = dir / "adapter_config.json";
  if (std::filesystem::exists(config) && read_json_file(config).value("fine_tune_type", "") == "full") refuse_full();
  return load_adapters(dir, *whole);
}

LoraAdapters::SumSquares sum_squares_over_ranks(const std::map<std::string, models::LayerSplit>& plan,
                                                Communicator& comm) {
  return [&plan, &comm](const std::string& layer, const Tensor& squares) {
    auto it = plan.find(layer);
    return it != plan.end() && it->second.row ? comm.all_reduce_sum(squares) : squares;
  };
}

void attach_split_adapters(models::TensorParallelLM& model, const std::filesystem::path& dir) {
  const LoraAdapters adapters = load_whole_adapters(model, dir);
  models::TransformerLM* whole = model.whole();
  const int world = model.world();
  std::vector<std::map<std::string, models::LayerSplit>> plans;
  std::vector<LoraAdapters> shares;
  for (int r = 0; r < world; ++r) {
    plans.push_back(models::shard_plan(*whole, r, world));
    shares.push_back(shard_adapters(adapters, plans.back(), r, world));
  }
  // Every rank attaches its layers in the same (name) order, so their all-reduces pair up.
  model.on_ranks([&](int r, models::TransformerLM& shard, Communicator& comm) {
    shares[static_cast<size_t>(r)].attach(shard, sum_squares_over_ranks(plans[static_cast<size_t>(r)], comm));
  });
}

}  // namespace lmx::train
