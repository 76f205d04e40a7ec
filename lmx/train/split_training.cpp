#include "lmx/train/split_training.h"

#include <algorithm>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/reduce.h"
#include "lmx/core/ops/shape.h"
#include "lmx/models/tensor_parallel.h"
#include "lmx/train/adapter_file.h"

namespace lmx::train {
namespace {

using Kind = WeightShare::Kind;
using models::LayerSpec;

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

bool holds(const std::vector<std::pair<int64_t, int64_t>>& ranges, int64_t row) {
  for (const auto& [b, e] : ranges) {
    if (row >= b && row < e) return true;
  }
  return false;
}

// A weight that no split rule slices: inside a split module (attention, MLP / experts) or not.
Kind replicated_kind(const models::TransformerSpec& spec, const std::string& name) {
  for (size_t l = 0; l < spec.layers.size(); ++l) {
    const std::string block = spec.body_name + "." + spec.layers_name + "." + std::to_string(l) + ".";
    const std::string mlp = block + spec.mlp_name + ".";
    const LayerSpec& ls = spec.layers[l];
    if (ls.moe && starts_with(name, mlp + ls.moe_options.experts_name + ".")) return Kind::experts;
    if (starts_with(name, block + spec.attn_name + ".") || starts_with(name, mlp)) return Kind::partial;
  }
  return Kind::whole;
}

Tensor on_device_scalar(double v, Device device) {
  return Tensor::from_vector(std::vector<float>{static_cast<float>(v)}, {1}).to(device);
}

// The sum over the ranks of one number (also a barrier: every rank waits for all).
double rank_sum(Communicator& comm, double v, Device device) {
  return comm.all_reduce_sum(on_device_scalar(v, device)).item<double>();
}

// Shared rows: the whole layer's gradient with each holder's rows in place (zeros
// elsewhere), added over the ranks, read back at this rank's rows.
Tensor add_shared_rows(const Tensor& g, const WeightShare& s, Communicator& comm) {
  Shape rest = g.shape();
  auto zeros = [&](int64_t n) {
    rest[0] = n;
    return Tensor::zeros(rest, Dtype::f32, g.device());
  };
  std::vector<Tensor> parts;
  int64_t pos = 0, local = 0;
  for (const auto& [b, e] : s.ranges) {
    if (b < pos) throw InternalError("tensor parallel: a column split's ranges out of order");
    if (b > pos) parts.push_back(zeros(b - pos));
    parts.push_back(g.slice(0, local, local + e - b));
    local += e - b;
    pos = e;
  }
  if (pos < s.whole_rows) parts.push_back(zeros(s.whole_rows - pos));
  const Tensor sum = comm.all_reduce_sum(ops::concat(parts, 0).contiguous());
  std::vector<Tensor> mine;
  for (const auto& [b, e] : s.ranges) mine.push_back(sum.slice(0, b, e));
  return (mine.size() == 1 ? mine[0] : ops::concat(mine, 0)).contiguous();
}

// Makes each weight's gradient the whole model's (the header says which need what). Every
// rank visits the weights in name order, so the all-reduces pair up; a rank that got no
// gradient for one (its experts chosen by no token) adds zeros.
void sync_gradients(LoraAdapters& a, const std::map<std::string, WeightShare>& shares, Communicator& comm) {
  for (auto& [name, var] : a.weights) {
    const WeightShare& s = shares.at(name);
    const bool shared = s.kind == Kind::rows && s.shared;
    if (s.kind != Kind::partial && !shared) continue;
    Tensor g = var.grad().defined() ? var.grad().to(Dtype::f32)
                                    : Tensor::zeros(var.shape(), Dtype::f32, var.value().device());
    var.set_grad(shared ? add_shared_rows(g, s, comm) : comm.all_reduce_sum(g.contiguous()));
  }
}

// The whole model's squared gradient norm: each whole weight's elements counted once (a
// replicated weight by rank 0, shared rows by their lowest holder), added over the ranks.
double squared_grad_norm(LoraAdapters& a, const std::map<std::string, WeightShare>& shares, Communicator& comm) {
  double local = 0.0;
  Device device = Device::cpu();
  for (auto& [name, var] : a.weights) {
    device = var.value().device();
    const Tensor g = var.grad();
    if (!g.defined()) continue;
    const WeightShare& s = shares.at(name);
    const Tensor sq = ops::square(g.to(Dtype::f32));
    if (s.kind == Kind::whole || s.kind == Kind::partial) {
      if (comm.rank() == 0) local += ops::sum_all(sq).item<double>();
    } else if (s.kind == Kind::rows && s.shared) {
      const std::vector<float> per_row = ops::sum(sq.reshape({g.dim(0), -1}), 1).to_float_vector();
      for (size_t i = 0; i < per_row.size(); ++i) local += static_cast<double>(per_row[i]) * s.counted[i];
    } else {
      local += ops::sum_all(sq).item<double>();
    }
  }
  return rank_sum(comm, local, device);
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
    WeightShare s;
    const size_t dot = name.rfind('.');
    const std::string layer = name.substr(0, dot);
    auto it = plans[static_cast<size_t>(rank)].find(layer);
    if (it == plans[static_cast<size_t>(rank)].end()) {
      s.kind = replicated_kind(whole.spec(), name);
    } else if (it->second.row) {
      s.kind = name.substr(dot + 1) == "bias" ? Kind::rank0 : Kind::columns;
    } else {
      s.kind = Kind::rows;
      s.ranges = it->second.outputs;
      s.whole_rows = out_features.at(layer);
      for (const auto& [b, e] : s.ranges) {
        for (int64_t row = b; row < e; ++row) {
          bool lower = false;
          for (int q = 0; q < world; ++q) {
            if (q == rank || !holds(plans[static_cast<size_t>(q)].at(layer).outputs, row)) continue;
            s.shared = true;
            lower = lower || q < rank;
          }
          s.counted.push_back(lower ? 0.0f : 1.0f);
        }
      }
      if (!s.shared) s.counted.clear();
    }
    out.emplace(name, std::move(s));
  }
  return out;
}

LoraAdapters join_ranks(const std::vector<const LoraAdapters*>& ranks,
                        const std::vector<std::map<std::string, WeightShare>>& shares) {
  LoraAdapters out;
  out.config = ranks.front()->config;
  auto value = [&](size_t r, const std::string& name) {
    return ranks[r]->weights.at(name).value().to(Device::cpu()).to(Dtype::f32);
  };
  for (const auto& [name, var] : ranks.front()->weights) {
    const WeightShare& s = shares.front().at(name);
    Tensor joined;
    if (s.kind == Kind::columns || s.kind == Kind::experts) {
      std::vector<Tensor> parts;
      for (size_t r = 0; r < ranks.size(); ++r) parts.push_back(value(r, name));
      joined = ops::concat(parts, s.kind == Kind::columns ? parts.front().ndim() - 1 : 0);
    } else if (s.kind == Kind::rows) {
      std::map<int64_t, std::pair<int64_t, Tensor>> pieces;  // by first row: (end, rows); held twice: either
      for (size_t r = 0; r < ranks.size(); ++r) {
        const Tensor v = value(r, name);
        int64_t local = 0;
        for (const auto& [b, e] : shares[r].at(name).ranges) {
          pieces.emplace(b, std::make_pair(e, v.slice(0, local, local + e - b)));
          local += e - b;
        }
      }
      std::vector<Tensor> parts;
      int64_t pos = 0;
      for (const auto& [b, piece] : pieces) {
        if (b != pos) {
          throw InternalError("tensor parallel: the ranks' rows of " + name + " leave a gap at " + std::to_string(pos));
        }
        parts.push_back(piece.second);
        pos = piece.first;
      }
      if (pos != s.whole_rows) {
        throw InternalError("tensor parallel: the ranks hold " + std::to_string(pos) + " rows of " + name);
      }
      joined = ops::concat(parts, 0);
    } else {
      joined = value(0, name);
    }
    out.weights.emplace(name, autograd::Var(joined.contiguous(), false));
  }
  return out;
}

SplitFineTune::SplitFineTune(models::TensorParallelLM& model, const LoraConfig& config) : model_(model) {
  if (config.type != FineTuneType::full) {
    throw Unsupported(std::string("tensor parallel: training ") + fine_tune_type_name(config.type) +
                      " adapters on a split model is not supported yet (--fine-tune-type full is)");
  }
  models::TransformerLM* whole = model.whole();
  if (!whole) throw Unsupported("tensor parallel: a split model of random weights is not trained");
  const int world = model.world();
  ranks_.resize(static_cast<size_t>(world));
  model.on_ranks([&](int r, models::TransformerLM& shard, Communicator&) {
    ranks_[static_cast<size_t>(r)] = make_lora(shard, config, 0);
  });
  for (int r = 0; r < world; ++r) {
    LoraAdapters& a = ranks_[static_cast<size_t>(r)];
    std::vector<std::string> names;
    for (const auto& [name, w] : a.weights) names.push_back(name);
    shares_.push_back(weight_shares(*whole, names, r, world));
    if (r == 0) continue;
    for (const auto& [name, s] : shares_.back()) {
      if (s.kind == Kind::rank0) a.weights.erase(name);  // zeros, so that the ranks' sum adds rank 0's once
    }
  }
}

LoraAdapters SplitFineTune::whole() const {
  std::vector<const LoraAdapters*> ranks;
  for (const auto& a : ranks_) ranks.push_back(&a);
  return join_ranks(ranks, shares_);
}

int64_t SplitFineTune::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, w] : ranks_.front().weights) {
    const WeightShare& s = shares_.front().at(name);
    const int64_t here = w.value().numel();
    if (s.kind == Kind::columns || s.kind == Kind::experts) {
      n += here * world();
    } else if (s.kind == Kind::rows) {
      n += here / w.value().dim(0) * s.whole_rows;
    } else {
      n += here;
    }
  }
  return n;
}

TrainResult SplitFineTune::train(const std::vector<Example>& train_set, const std::vector<Example>& valid_set,
                                 const TrainOptions& options, const TrainingForwardOptions& forward,
                                 const std::function<void(const TrainReport&)>& on_report) {
  if (options.optimizer.kind == OptimizerKind::adafactor) {
    throw Unsupported("tensor parallel: Adafactor on a split model is not supported yet (its factored statistics "
                      "span whole matrices); use sgd, adam or adamw");
  }
  std::vector<TrainResult> results(ranks_.size());
  model_.on_ranks([&](int r, models::TransformerLM& shard, Communicator& comm) {
    const size_t i = static_cast<size_t>(r);
    DifferentiableTransformer dt(shard, forward);
    LoraAdapters& mine = ranks_[i];
    const auto& shares = shares_[i];
    const Device device = model_device(shard);
    RankHooks hooks;
    hooks.main = r == 0;
    hooks.sync_gradients = [&] { sync_gradients(mine, shares, comm); };
    hooks.squared_grad_norm = [&] { return squared_grad_norm(mine, shares, comm); };
    hooks.any = [&](bool flag) { return rank_sum(comm, flag ? 1.0 : 0.0, device) > 0.5; };
    // Rank 0 reads every rank's weights while the others wait between the two barriers.
    hooks.save = [&](const std::filesystem::path& dir, const nlohmann::json& extra, const std::string& file) {
      rank_sum(comm, 0.0, device);
      if (r == 0) save_adapters(dir, whole(), extra, file);
      rank_sum(comm, 0.0, device);
    };
    results[i] = train::train(dt, mine, train_set, valid_set, options, on_report, &hooks);
  });
  return results.front();
}

double SplitFineTune::evaluate(const std::vector<Example>& data, int64_t batch_size, int64_t num_batches,
                               int64_t max_seq_length, bool mask_prompt) {
  std::vector<double> losses(ranks_.size());
  model_.on_ranks([&](int r, models::TransformerLM& shard, Communicator&) {
    DifferentiableTransformer dt(shard, {});
    losses[static_cast<size_t>(r)] = train::evaluate(dt, &ranks_[static_cast<size_t>(r)], data, batch_size,
                                                     num_batches, max_seq_length, mask_prompt);
  });
  return losses.front();
}

}  // namespace lmx::train
