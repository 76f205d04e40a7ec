#include "lmx/train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "lmx/base/error.h"
#include "lmx/core/allocator.h"
#include "lmx/core/autograd/functions.h"
#include "lmx/core/autograd/grad_scope.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/random.h"
#include "lmx/io/atomic_write.h"
#include "lmx/train/adapter_file.h"
#include "lmx/train/loss_plot.h"

namespace lmx::train {
namespace {

autograd::Var batch_loss(const DifferentiableTransformer& model, const LoraAdapters* adapters, const Batch& batch,
                         ops::RandomGenerator* rng) {
  return model.loss(batch.inputs, batch.targets, batch.weights, adapters, rng);
}

TrainReport validation_report(int64_t it, double loss) {
  TrainReport r;
  r.kind = TrainReport::Kind::validation;
  r.iteration = it;
  r.loss = loss;
  return r;
}

std::string checkpoint_name(int64_t it) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%07lld_adapters.safetensors", static_cast<long long>(it));
  return buf;
}

}  // namespace

double evaluate(const DifferentiableTransformer& model, const LoraAdapters* adapters, const std::vector<Example>& data,
                int64_t batch_size, int64_t num_batches, int64_t max_seq_length, bool mask_prompt) {
  const auto batches = length_sorted_batches(data, batch_size);
  double total = 0.0;
  int64_t tokens = 0;
  for (size_t i = 0; i < batches.size() && (num_batches < 0 || static_cast<int64_t>(i) < num_batches); ++i) {
    Batch b = make_batch(data, batches[i], max_seq_length, mask_prompt);
    if (b.tokens == 0) continue;
    total += batch_loss(model, adapters, b, nullptr).value().item<double>() * static_cast<double>(b.tokens);
    tokens += b.tokens;
  }
  if (tokens == 0) throw InvalidArgument("evaluate: no batch has a target to score");
  return total / static_cast<double>(tokens);
}

TrainResult train(const DifferentiableTransformer& model, LoraAdapters& adapters, const std::vector<Example>& train_set,
                  const std::vector<Example>& valid_set, const TrainOptions& o,
                  const std::function<void(const TrainReport&)>& on_report, const RankHooks* ranks) {
  const bool main = !ranks || ranks->main;
  if (o.iters <= 0) throw InvalidArgument("train: iters must be positive");
  if (o.grad_accumulation_steps <= 0) throw InvalidArgument("train: grad_accumulation_steps must be positive");
  const auto batches = length_sorted_batches(train_set, o.batch_size);
  LossCurve curve;
  auto report = [&](const TrainReport& r) {
    if (r.kind == TrainReport::Kind::train) curve.train.emplace_back(r.iteration, r.loss);
    if (r.kind == TrainReport::Kind::validation) curve.validation.emplace_back(r.iteration, r.loss);
    if (on_report && main) on_report(r);
  };
  auto validate = [&]() {
    return evaluate(model, &adapters, valid_set, o.batch_size, o.val_batches, o.max_seq_length, o.mask_prompt);
  };
  auto save = [&](int64_t it) {
    if (o.adapter_path.empty()) return;
    nlohmann::json extra = o.config_extra;
    auto write = [&](const std::string& name) {
      if (ranks) {
        ranks->save(o.adapter_path, extra, name);
      } else {
        save_adapters(o.adapter_path, adapters, extra, name);
      }
    };
    write("adapters.safetensors");
    if (it > 0) write(checkpoint_name(it));
    if (!main) return;
    io::write_file_atomic(o.adapter_path / "loss_curve.svg", loss_curve_svg(curve));
    TrainReport r;
    r.kind = TrainReport::Kind::save;
    r.iteration = it;
    r.saved = o.adapter_path / "adapters.safetensors";
    report(r);
  };

  std::mt19937_64 order_rng(o.seed);
  ops::RandomGenerator dropout_rng(o.seed + 1);
  Optimizer opt(adapters.parameters(), o.optimizer);
  TrainResult result;
  result.initial_validation_loss = validate();
  report(validation_report(0, result.initial_validation_loss));

  std::vector<size_t> order;
  size_t next = 0;
  double window_loss = 0.0;
  int64_t window_steps = 0, window_tokens = 0, trained_tokens = 0;
  auto window_start = std::chrono::steady_clock::now();
  // Peak memory is that of the device the adapters (and so the model) live on.
  const auto params0 = adapters.parameters();
  const Device device = params0.empty() ? Device::cpu() : params0.front()->value().device();
  allocator_for(device).reset_peak();
  for (int64_t it = 1; it <= o.iters; ++it) {
    if (next == order.size()) {  // a new epoch: the batches in a fresh order
      order.resize(batches.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), order_rng);
      next = 0;
    }
    const Batch batch = make_batch(train_set, batches[order[next++]], o.max_seq_length, o.mask_prompt);
    if (batch.tokens == 0) continue;  // every target masked (a prompt longer than the limit)
    const float lr = o.schedule.at(opt.steps());
    double loss = 0.0;
    {
      autograd::GradScope scope;
      autograd::Var l = batch_loss(model, &adapters, batch, &dropout_rng);
      loss = l.value().item<double>();
      if (!std::isfinite(loss)) {
        throw Error("training stopped at iteration " + std::to_string(it) + ": the loss is " + std::to_string(loss) +
                    (o.adapter_path.empty() ? std::string()
                                            : "; the adapters saved last in " + o.adapter_path.string() + " are kept"));
      }
      autograd::backward(l);
    }
    if (it % o.grad_accumulation_steps == 0) {  // the gradients of the last N batches add up in the leaves
      auto params = adapters.parameters();
      if (o.grad_accumulation_steps > 1) {
        for (auto* p : params) {
          if (p->grad().defined()) p->set_grad(ops::div(p->grad(), static_cast<double>(o.grad_accumulation_steps)));
        }
      }
      if (ranks) ranks->sync_gradients();
      if (o.grad_clip > 0.0) clip_grad_norm(params, o.grad_clip, ranks ? ranks->squared_grad_norm : nullptr);
      opt.step(lr);
      opt.zero_grad();
    }
    window_loss += loss;
    ++window_steps;
    window_tokens += batch.tokens;
    trained_tokens += batch.tokens;
    result.iterations = it;
    if (it % o.steps_per_report == 0 || it == o.iters) {
      const double secs =
          std::max(1e-9, std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count());
      TrainReport r;
      r.kind = TrainReport::Kind::train;
      r.iteration = it;
      r.loss = window_loss / static_cast<double>(window_steps);
      r.learning_rate = lr;
      r.iterations_per_second = static_cast<double>(window_steps) / secs;
      r.tokens_per_second = static_cast<double>(window_tokens) / secs;
      r.trained_tokens = trained_tokens;
      r.peak_memory = allocator_for(device).stats().peak_bytes;
      report(r);
      window_loss = 0.0;
      window_steps = window_tokens = 0;
      window_start = std::chrono::steady_clock::now();
    }
    if (o.steps_per_eval > 0 && it % o.steps_per_eval == 0 && it != o.iters) {
      report(validation_report(it, validate()));
    }
    if (o.save_every > 0 && it % o.save_every == 0 && it != o.iters) save(it);
    if (o.stop_requested && (ranks ? ranks->any(main && o.stop_requested()) : o.stop_requested())) {
      result.stopped = true;
      break;
    }
  }
  if (result.stopped) {
    save(result.iterations);
    return result;
  }
  result.final_validation_loss = validate();
  report(validation_report(result.iterations, result.final_validation_loss));
  save(result.iterations);
  return result;
}

}  // namespace lmx::train
