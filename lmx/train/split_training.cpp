#include "lmx/train/split_training.h"

#include <utility>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/reduce.h"
#include "lmx/core/ops/shape.h"
#include "lmx/models/tensor_parallel.h"
#include "lmx/train/adapter_file.h"
#include "lmx/train/peft_adapter.h"
#include "lmx/train/split_adapters.h"

namespace lmx::train {
namespace {

using Kind = WeightShare::Kind;

Tensor on_device_scalar(double v, Device device) {
  return Tensor::from_vector(std::vector<float>{static_cast<float>(v)}, {1}).to(device);
}

// The sum over the ranks of one number (also a barrier: every rank waits for all).
double rank_sum(Communicator& comm, double v, Device device) {
  return comm.all_reduce_sum(on_device_scalar(v, device)).item<double>();
}

// Shared outputs: the whole layer's gradient with each holder's outputs in place (zeros
// elsewhere), added over the ranks, read back at this rank's outputs.
Tensor add_shared_outputs(const Tensor& g, const WeightShare& s, Communicator& comm) {
  Shape rest = g.shape();
  auto zeros = [&](int64_t n) {
    rest[static_cast<size_t>(s.axis)] = n;
    return Tensor::zeros(rest, Dtype::f32, g.device());
  };
  std::vector<Tensor> parts;
  int64_t pos = 0, local = 0;
  for (const auto& [b, e] : s.ranges) {
    if (b < pos) throw InternalError("tensor parallel: a column split's ranges out of order");
    if (b > pos) parts.push_back(zeros(b - pos));
    parts.push_back(g.slice(s.axis, local, local + e - b));
    local += e - b;
    pos = e;
  }
  if (pos < s.whole_size) parts.push_back(zeros(s.whole_size - pos));
  const Tensor sum = comm.all_reduce_sum(ops::concat(parts, s.axis).contiguous());
  std::vector<Tensor> mine;
  for (const auto& [b, e] : s.ranges) mine.push_back(sum.slice(s.axis, b, e));
  return (mine.size() == 1 ? mine[0] : ops::concat(mine, s.axis)).contiguous();
}

// Makes each tensor's gradient the whole model's (weight_shares.h says which need what).
// Every rank visits the tensors in name order, so the all-reduces pair up; a rank that got
// no gradient for one (its experts chosen by no token) adds zeros.
void sync_gradients(LoraAdapters& a, const std::map<std::string, WeightShare>& shares, Communicator& comm) {
  for (auto& [name, var] : a.named_parameters()) {
    const WeightShare& s = shares.at(name);
    const bool shared = s.kind == Kind::outputs && s.shared;
    if (s.kind != Kind::partial && !shared) continue;
    Tensor g = var->grad().defined() ? var->grad().to(Dtype::f32)
                                     : Tensor::zeros(var->shape(), Dtype::f32, var->value().device());
    var->set_grad(shared ? add_shared_outputs(g, s, comm) : comm.all_reduce_sum(g.contiguous()));
  }
}

// The whole model's squared gradient norm: each whole tensor's elements counted once (a
// replicated one by rank 0, shared outputs by their lowest holder), added over the ranks.
double squared_grad_norm(LoraAdapters& a, const std::map<std::string, WeightShare>& shares, Communicator& comm) {
  double local = 0.0;
  Device device = Device::cpu();
  for (auto& [name, var] : a.named_parameters()) {
    device = var->value().device();
    const Tensor g = var->grad();
    if (!g.defined()) continue;
    const WeightShare& s = shares.at(name);
    const Tensor sq = ops::square(g.to(Dtype::f32));
    if (s.kind == Kind::whole || s.kind == Kind::partial) {
      if (comm.rank() == 0) local += ops::sum_all(sq).item<double>();
    } else if (s.kind == Kind::outputs && s.shared) {
      const Tensor by_output = (s.axis == 0 ? sq : sq.transpose(0, s.axis)).contiguous();
      const std::vector<float> per = ops::sum(by_output.reshape({by_output.dim(0), -1}), 1).to_float_vector();
      for (size_t i = 0; i < per.size(); ++i) local += static_cast<double>(per[i]) * s.counted[i];
    } else {
      local += ops::sum_all(sq).item<double>();
    }
  }
  return rank_sum(comm, local, device);
}

std::vector<std::string> names_of(const LoraAdapters& a) {
  std::vector<std::string> out;
  for (const auto& [name, var] : a.named_parameters()) out.push_back(name);
  return out;
}

models::TransformerLM& whole_of(models::TensorParallelLM& model) {
  models::TransformerLM* whole = model.whole();
  if (!whole) throw Unsupported("tensor parallel: a split model of random weights is not trained");
  return *whole;
}

}  // namespace

SplitFineTune::SplitFineTune(models::TensorParallelLM& model, const LoraConfig& config, uint64_t seed)
    : model_(model) {
  models::TransformerLM& whole = whole_of(model);
  if (config.type != FineTuneType::full) {
    // a drawn for the whole model (b zeros), so that a split run starts where a whole one
    // does; DoRA's m from each rank's weights (the whole model here holds none).
    LoraConfig drawn = config;
    drawn.type = FineTuneType::lora;
    LoraAdapters start = make_lora(whole, drawn, seed);
    start.config.type = config.type;
    if (config.type == FineTuneType::dora) {
      for (auto& [layer, p] : start.layers) p.m = autograd::Var(Tensor::zeros({p.b.shape()[1]}), true);
    }
    share(start, config.type == FineTuneType::dora);
    return;
  }
  ranks_.resize(static_cast<size_t>(model.world()));
  model.on_ranks([&](int r, models::TransformerLM& shard, Communicator&) {
    ranks_[static_cast<size_t>(r)] = make_lora(shard, config, 0);
  });
  make_shares();
  for (int r = 1; r < world(); ++r) {
    LoraAdapters& a = ranks_[static_cast<size_t>(r)];
    for (const auto& [name, s] : shares_[static_cast<size_t>(r)]) {
      if (s.kind == Kind::rank0) a.weights.erase(name);  // zeros, so that the ranks' sum adds rank 0's once
    }
  }
}

SplitFineTune::SplitFineTune(models::TensorParallelLM& model, const LoraAdapters& whole) : model_(model) {
  whole_of(model);
  if (whole.config.type == FineTuneType::full || !whole.weights.empty()) {
    throw Unsupported(
        "tensor parallel: full fine-tuning's weights are split from their folder (SplitFineTune::saved), not from "
        "adapters");
  }
  share(whole, false);
}

SplitFineTune SplitFineTune::saved(models::TensorParallelLM& model, const std::filesystem::path& dir) {
  check_adapter_folder(dir);
  if (!is_peft_adapter(dir)) {
    // Full fine-tuning's weights: the shard's own, then the file's (checked against the whole
    // model's names and shapes, which the weightless whole() alone does not hold).
    const LoraConfig config = read_adapter_config(dir);
    if (config.type == FineTuneType::full) {
      SplitFineTune tune(model, config);
      tune.resume(dir / "adapters.safetensors");
      return tune;
    }
  }
  return SplitFineTune(model, load_whole_adapters(model, dir));
}

void SplitFineTune::make_shares() {
  shares_.clear();
  for (int r = 0; r < world(); ++r) {
    shares_.push_back(weight_shares(whole_of(model_), names_of(ranks_[static_cast<size_t>(r)]), r, world()));
  }
}

void SplitFineTune::share(const LoraAdapters& whole, bool dora_magnitudes) {
  const int world = model_.world();
  ranks_.assign(static_cast<size_t>(world), whole);  // the names, for the shares
  make_shares();
  std::map<std::string, Tensor> values;
  for (const auto& [name, var] : whole.named_parameters()) values[name] = var->value().to(Device::cpu());
  std::vector<std::map<std::string, models::LayerSplit>> plans;
  for (int r = 0; r < world; ++r) plans.push_back(models::shard_plan(whole_of(model_), r, world));
  model_.on_ranks([&](int r, models::TransformerLM& shard, Communicator& comm) {
    const auto& shares = shares_[static_cast<size_t>(r)];
    const Device device = model_device(shard);
    LoraAdapters mine = whole.with_values(
        [&](const std::string& name) { return rank_share(values.at(name), shares.at(name), r, world).to(device); },
        true);
    if (dora_magnitudes) {  // every rank in name order: the row-parallel layers' sums pair up
      const auto sum_squares = sum_squares_over_ranks(plans[static_cast<size_t>(r)], comm);
      const auto linears = linear_layers(shard);
      for (auto& [layer, p] : mine.layers) {
        p.m.set_value(ops::sqrt(sum_squares(layer, squared_row_norms(linears.at(layer)->weight()))).to(device));
      }
    }
    ranks_[static_cast<size_t>(r)] = std::move(mine);
  });
}

void SplitFineTune::resume(const std::filesystem::path& file) {
  LoraAdapters all = whole();  // the whole model's names and shapes
  resume_adapters(file, all);
  std::map<std::string, Tensor> values;
  for (const auto& [name, var] : all.named_parameters()) values[name] = var->value();
  for (int r = 0; r < world(); ++r) {
    LoraAdapters& mine = ranks_[static_cast<size_t>(r)];
    const auto& shares = shares_[static_cast<size_t>(r)];
    const auto params = mine.named_parameters();
    const Device device = params.empty() ? Device::cpu() : params.front().second->value().device();
    mine = mine.with_values(
        [&](const std::string& name) { return rank_share(values.at(name), shares.at(name), r, world()).to(device); },
        true);
  }
}

LoraAdapters SplitFineTune::whole() const {
  std::vector<const LoraAdapters*> ranks;
  for (const auto& a : ranks_) ranks.push_back(&a);
  return join_ranks(ranks, shares_);
}

int64_t SplitFineTune::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, w] : ranks_.front().named_parameters()) {
    const WeightShare& s = shares_.front().at(name);
    const int64_t here = w->value().numel();
    if (s.kind == Kind::split) {
      n += here * world();
    } else if (s.kind == Kind::outputs) {
      n += here / w->value().dim(s.axis) * s.whole_size;
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
