// What the tests of split fine-tuning (full, LoRA, DoRA) share: random token sequences, a
// run's reported losses and saved tensors, and the checks that a split run gives the whole
// model's (losses at every report, the saved tensors' names, shapes and values) and keeps
// its ranks' replicated tensors alike (check_split_runs: a fixture trained whole and split).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lmx/core/ops/random.h"
#include "lmx/io/safetensors.h"
#include "lmx/models/load.h"
#include "lmx/models/tensor_parallel_model.h"
#include "lmx/train/adapter_file.h"
#include "lmx/train/split_training.h"
#include "lmx/train/trainer.h"
#include "tests/train/train_fixtures.h"

namespace lmx::testing {

// Random sequences of 9 to 16 tokens (ids 3 to 250).
inline std::vector<train::Example> random_examples(uint64_t seed, int n) {
  ops::RandomGenerator rng(seed);
  const auto lengths = rng.uniform({n}, 9.0f, 17.0f).to_float_vector();
  std::vector<train::Example> out;
  for (int e = 0; e < n; ++e) {
    const auto len = static_cast<int64_t>(lengths[static_cast<size_t>(e)]);
    train::Example ex;
    for (float id : rng.uniform({len}, 3.0f, 251.0f).to_float_vector()) ex.tokens.push_back(static_cast<int32_t>(id));
    out.push_back(ex);
  }
  return out;
}

inline const std::vector<train::Example>& split_train_set() {
  static const auto data = random_examples(3, 8);
  return data;
}
inline const std::vector<train::Example>& split_valid_set() {
  static const auto data = random_examples(5, 4);
  return data;
}

// 6 steps of 2 sequences, a report each step, validation every 3, saved at the end to `out`;
// SGD with momentum 0.5 or the other optimizers, at learning rate `lr`.
inline train::TrainOptions split_run_options(train::OptimizerKind optimizer, float lr,
                                             const std::filesystem::path& out) {
  train::TrainOptions o;
  o.batch_size = 2;
  o.iters = 6;
  o.steps_per_report = 1;
  o.steps_per_eval = 3;
  o.val_batches = -1;
  o.save_every = 0;
  o.optimizer.kind = optimizer;
  o.optimizer.momentum = 0.5f;
  o.schedule.peak = lr;
  o.adapter_path = out;
  return o;
}

inline const char* optimizer_label(train::OptimizerKind k) {
  return k == train::OptimizerKind::sgd ? "sgd" : k == train::OptimizerKind::adam ? "adam" : "adamw";
}

struct Run {
  std::vector<double> losses;                         // every report's (train and validation), in order
  std::map<std::string, std::vector<float>> weights;  // the saved file's
  std::map<std::string, std::vector<int64_t>> shapes;
};

inline Run read_run(const std::filesystem::path& dir, std::vector<double> losses) {
  Run r{std::move(losses), {}, {}};
  const io::SafetensorsFile f = io::SafetensorsFile::open(dir / "adapters.safetensors");
  for (const io::TensorInfo& t : f.tensors()) {
    r.weights[t.name] = train::read_f32(t).to_float_vector();
    r.shapes[t.name] = t.shape;
  }
  return r;
}

// on_report that keeps the train and validation losses.
inline std::function<void(const train::TrainReport&)> collect(std::vector<double>& losses) {
  return [&losses](const train::TrainReport& r) {
    if (r.kind != train::TrainReport::Kind::save) losses.push_back(r.loss);
  };
}

// The tensors' values by name (f32, on the host).
inline std::map<std::string, std::vector<float>> values_of(const train::LoraAdapters& a) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, var] : a.named_parameters()) out[name] = var->value().to_float_vector();
  return out;
}

// Every rank's copy of a replicated tensor equals rank 0's.
inline void expect_replicas_alike(train::SplitFineTune& tune) {
  using Kind = train::WeightShare::Kind;
  const auto first = values_of(tune.rank(0));
  for (int r = 1; r < tune.world(); ++r) {
    const auto mine = values_of(tune.rank(r));
    for (const auto& [name, s] : tune.shares(r)) {
      if (s.kind == Kind::whole || s.kind == Kind::partial) {
        EXPECT_EQ(mine.at(name), first.at(name)) << name << " on rank " << r;
      }
    }
  }
}

// max |got - want| over every loss and every saved value (printed with the largest move of
// the whole run's tensors from `initial`), within the bounds; training moved them.
inline void expect_same_run(const Run& got, const Run& want, const std::map<std::string, std::vector<float>>& initial,
                            const std::string& what, double loss_bound, double weight_bound) {
  ASSERT_EQ(got.losses.size(), want.losses.size()) << what;
  double loss_err = 0.0;
  for (size_t i = 0; i < want.losses.size(); ++i) {
    loss_err = std::max(loss_err, std::fabs(got.losses[i] - want.losses[i]));
  }
  ASSERT_EQ(got.shapes, want.shapes) << what << ": the saved tensors' names and shapes";
  double err = 0.0, moved = 0.0;
  for (const auto& [name, w] : want.weights) {
    const auto& g = got.weights.at(name);
    const auto& start = initial.at(name);
    for (size_t i = 0; i < w.size(); ++i) {
      err = std::max(err, static_cast<double>(std::fabs(g[i] - w[i])));
      moved = std::max(moved, static_cast<double>(std::fabs(w[i] - start[i])));
    }
  }
  std::printf("%s: %zu losses (first %.4f, last %.4f), max loss diff %.2e; tensors moved up to %.2e, max diff %.2e\n",
              what.c_str(), want.losses.size(), want.losses.front(), want.losses.back(), loss_err, moved, err);
  EXPECT_LE(loss_err, loss_bound) << what;
  EXPECT_LE(err, weight_bound) << what;
  EXPECT_GT(moved, 20 * weight_bound) << what << ": training moves the tensors";
}

// One fixture trained whole and split: what is trained, how, and how close the runs must be.
struct SplitRates {
  float sgd_lr = 0.0f, other_lr = 0.0f;       // SGD's learning rate, the other optimizer's
  double sgd_bound = 0.0, other_bound = 0.0;  // their saved tensors' max difference (losses: 1e-5)
};
struct SplitCase {
  std::string model;  // of tests/data/models
  std::vector<int> worlds;
  train::LoraConfig tuning;
  train::OptimizerKind optimizer = train::OptimizerKind::sgd;  // also run: adam / adamw
  SplitRates rates = {};
  uint64_t seed = 0;  // of the adapters
  double grad_clip = 0.0;
  int64_t accumulation = 1;
  bool checkpoint = false;
  std::filesystem::path dir = {};  // the model's folder, if not tests/data/models/<model>
};

inline std::filesystem::path model_dir(const SplitCase& c) { return c.dir.empty() ? tiny_model_dir(c.model) : c.dir; }

inline train::TrainOptions run_options(const SplitCase& c, train::OptimizerKind optimizer,
                                       const std::filesystem::path& out) {
  train::TrainOptions o =
      split_run_options(optimizer, optimizer == train::OptimizerKind::sgd ? c.rates.sgd_lr : c.rates.other_lr, out);
  o.grad_accumulation_steps = c.accumulation;
  o.grad_clip = c.grad_clip;
  return o;
}

inline train::TrainingForwardOptions run_forward(const SplitCase& c) {
  return {.grad_checkpoint = c.checkpoint, .loss_chunk_rows = 5};
}

inline Run train_whole(const SplitCase& c, train::OptimizerKind optimizer, const std::filesystem::path& out,
                       std::map<std::string, std::vector<float>>* initial) {
  models::LoadedModel m = models::load_model(model_dir(c));
  auto& model = transformer(m);
  train::DifferentiableTransformer dt(model, run_forward(c));
  train::LoraAdapters a = train::make_lora(model, c.tuning, c.seed);
  *initial = values_of(a);
  std::vector<double> losses;
  train::train(dt, a, split_train_set(), split_valid_set(), run_options(c, optimizer, out), collect(losses));
  return read_run(out, losses);
}

inline Run train_split(const SplitCase& c, train::OptimizerKind optimizer, int world,
                       const std::filesystem::path& out) {
  auto split = models::TensorParallelLM::load(model_dir(c), {.tensor_parallel = world});
  train::SplitFineTune tune(*split, c.tuning, c.seed);
  std::vector<double> losses;
  tune.train(split_train_set(), split_valid_set(), run_options(c, optimizer, out), run_forward(c), collect(losses));
  expect_replicas_alike(tune);
  return read_run(out, losses);
}

// The whole run against the split ones at every world (SGD, then the other optimizer if
// any); one rank adds nothing, so it must be the whole run bit for bit.
inline void check_split_runs(const SplitCase& c) {
  TempDir tmp("-runs");
  std::vector<train::OptimizerKind> optimizers{train::OptimizerKind::sgd};
  if (c.optimizer != train::OptimizerKind::sgd) optimizers.push_back(c.optimizer);
  for (train::OptimizerKind optimizer : optimizers) {
    const bool sgd = optimizer == train::OptimizerKind::sgd;
    std::map<std::string, std::vector<float>> initial;
    const Run whole = train_whole(c, optimizer, tmp.path / "whole", &initial);
    for (int world : c.worlds) {
      const std::string what = c.model + " " + train::fine_tune_type_name(c.tuning.type) + " (" +
                               optimizer_label(optimizer) + ") at " + std::to_string(world) + " ranks";
      SCOPED_TRACE(what);
      const double bound = world == 1 ? 0.0 : sgd ? c.rates.sgd_bound : c.rates.other_bound;
      expect_same_run(train_split(c, optimizer, world, tmp.path / std::to_string(world)), whole, initial, what,
                      world == 1 ? 0.0 : 1e-5, bound);
    }
  }
}

}  // namespace lmx::testing
