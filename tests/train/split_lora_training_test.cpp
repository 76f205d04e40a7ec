// LoRA / DoRA training of a split model (lmx/train/split_training.h) against the whole
// model's, which is always the reference: the same adapters (drawn from one seed for the
// whole model, each rank given its share), data, options and steps on the whole model and
// on its split over 1, 2 and 4 ranks (threads of a ThreadGroup) give the same losses at
// every report and the same saved adapters (joined back into the whole model's layout: same
// names and shapes), and every rank's copy of a replicated tensor stays the same. Every case
// runs SGD with momentum, whose update is linear in the gradient (a gradient counted twice
// or half shows at once), and Adam or AdamW where named. The fixtures cover kv heads split
// (2 ranks) and replicated (4 ranks: lora_b's columns and m's rows held twice, their
// gradients added over the holders), column-parallel lora_a (its gradient added over the
// ranks), row-parallel lora_a split and lora_b / m whole (their gradients added), DoRA's
// norms of row-parallel layers (the ranks' squared norms added in the forward) with biases
// on rank 0, a router's adapters (whole, gradients added), dropout (the row-parallel masks
// the rank's columns of the whole model's), gradient clipping, accumulation and
// checkpointing. A run resumed split from a whole run's file continues as the whole run
// resumed does (DoRA and full fine-tuning), and saved adapters test split as whole. The base
// may be MLX-quantized (QLoRA).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <utility>

#include "lmx/models/load.h"
#include "lmx/models/save.h"
#include "lmx/models/tensor_parallel.h"
#include "lmx/train/split_adapters.h"
#include "lmx/train/split_training.h"
#include "tests/train/split_runs.h"
#include "tests/train/train_fixtures.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;
using Values = std::map<std::string, std::vector<float>>;

constexpr uint64_t kSeed = 17;

// LoRA / DoRA (rank 4) on every Linear of every block of `model` at `worlds`: SGD at
// learning rate 0.01 (adapters within 1e-6) and `optimizer` at 1e-3 (1e-5).
testing::SplitCase adapters(const std::string& model, std::vector<int> worlds, train::FineTuneType type,
                            train::OptimizerKind optimizer = train::OptimizerKind::sgd) {
  return {model, std::move(worlds), testing::tuning(type, -1, 4), optimizer, {0.01f, 1e-3f, 1e-6, 1e-5}, kSeed};
}

// llama: kv heads split at 2 ranks, replicated at 4; one rank is the whole model bit for
// bit. Also Adam.
TEST(SplitLoraTraining, LlamaLoraGivesTheWholeModelsLossesAndAdapters) {
  testing::check_split_runs(adapters("llama", {1, 2, 4}, train::FineTuneType::lora, train::OptimizerKind::adam));
}

TEST(SplitLoraTraining, LlamaDoraGivesTheWholeModelsLossesAndAdapters) {
  testing::check_split_runs(adapters("llama", {1, 2, 4}, train::FineTuneType::dora, train::OptimizerKind::adam));
}

// llama_tied: biases on q / k / v and o_proj (rank 0's, added after DoRA's rescaling), a
// tied vocabulary-parallel head.
TEST(SplitLoraTraining, DoraWithBiasesGivesTheWholeModelsLossesAndAdapters) {
  testing::check_split_runs(adapters("llama_tied", {2, 4}, train::FineTuneType::dora));
}

// qwen2: two batches a step, gradient checkpointing (DoRA's row-parallel norms summed again
// in the recomputed blocks). Also AdamW.
TEST(SplitLoraTraining, DoraWithAccumulationAndCheckpointingGivesTheWholeModelsLossesAndAdapters) {
  testing::SplitCase c = adapters("qwen2", {2, 4}, train::FineTuneType::dora, train::OptimizerKind::adamw);
  c.accumulation = 2;
  c.checkpoint = true;
  testing::check_split_runs(c);
}

// qwen3: per-head q / k norms; the gradient's global norm clipped (to 0.05: every step
// here, so the learning rate is larger).
TEST(SplitLoraTraining, ClippingGivesTheWholeModelsLossesAndAdapters) {
  testing::SplitCase c = adapters("qwen3", {2, 4}, train::FineTuneType::lora);
  c.grad_clip = 0.05;
  c.rates.sgd_lr = 1.0f;
  testing::check_split_runs(c);
}

// gemma2: post-norms, unit-offset norms, soft-capping, sliding windows.
TEST(SplitLoraTraining, GemmaTwoGivesTheWholeModelsLossesAndAdapters) {
  testing::check_split_runs(adapters("gemma2", {2}, train::FineTuneType::lora));
}

// qwen3_moe: experts split 2 and 1 a rank, the router whole with its adapters (their
// gradients added over the ranks).
TEST(SplitLoraTraining, RouterAdaptersGiveTheWholeModelsLossesAndAdapters) {
  testing::check_split_runs(adapters("qwen3_moe", {2, 4}, train::FineTuneType::dora));
}

// Dropout on the adapters' inputs: every rank draws the whole model's masks.
TEST(SplitLoraTraining, DropoutGivesTheWholeModelsLossesAndAdapters) {
  testing::SplitCase c = adapters("llama", {2, 4}, train::FineTuneType::lora);
  c.tuning.dropout = 0.3f;
  testing::check_split_runs(c);
}

// QLoRA: LoRA and DoRA on llama in MLX 4-bit (group 32, its o_proj's 64 inputs two groups: 2
// ranks), the base kept packed; DoRA's norms over the dequantized rows.
TEST(SplitLoraTraining, QuantizedBaseGivesTheWholeModelsLossesAndAdapters) {
  testing::TempDir tmp;
  models::save_quantized_copy(testing::tiny_llama_dir(), tmp.path / "q4", {.bits = 4, .group_size = 32});
  for (train::FineTuneType type : {train::FineTuneType::lora, train::FineTuneType::dora}) {
    testing::SplitCase c = adapters("llama-q4", {2}, type);
    c.dir = tmp.path / "q4";
    testing::check_split_runs(c);
  }
}

// The adapters a split run starts from are the whole model's (make_lora's from the same
// seed: a and b exactly, DoRA's m from each rank's rows, the row-parallel ones' squares
// added over the ranks: to rounding), and each rank's share is the one inference attaches
// (shard_adapters, by the same plan).
TEST(SplitLoraTraining, ASplitRunStartsFromTheWholeModelsAdapters) {
  models::LoadedModel m = models::load_model(testing::tiny_llama_dir());
  for (train::FineTuneType type : {train::FineTuneType::lora, train::FineTuneType::dora}) {
    const train::LoraAdapters want = train::make_lora(testing::transformer(m), testing::tuning(type, -1, 4), kSeed);
    const Values want_values = testing::values_of(want);
    for (int world : {1, 2, 4}) {
      SCOPED_TRACE(std::string(train::fine_tune_type_name(type)) + " at " + std::to_string(world) + " ranks");
      auto split = models::TensorParallelLM::load(testing::tiny_llama_dir(), {.tensor_parallel = world});
      train::SplitFineTune tune(*split, testing::tuning(type, -1, 4), kSeed);
      const Values got = testing::values_of(tune.whole());
      ASSERT_EQ(got.size(), want_values.size());
      for (const auto& [name, w] : want_values) {
        if (name.ends_with(".m") && world > 1) {
          EXPECT_LE(testing::rel_err(got.at(name), w), 1e-6) << name;
        } else {
          EXPECT_EQ(got.at(name), w) << name;
        }
      }
      for (int r = 0; r < world; ++r) {
        const auto plan = models::shard_plan(*split->whole(), r, world);
        const train::LoraAdapters inference = train::shard_adapters(want, plan, r, world);
        const Values share = testing::values_of(tune.rank(r));
        for (const auto& [name, v] : testing::values_of(inference)) {
          if (name.ends_with(".m")) {
            EXPECT_LE(testing::rel_err(share.at(name), v), 1e-6) << name << " on rank " << r;
          } else {
            EXPECT_EQ(share.at(name), v) << name << " on rank " << r;
          }
        }
      }
    }
  }
}

// A run of 3 steps saved by the whole model, then resumed for 3 more (--resume-adapter-file)
// by the whole model and by its split over 2 and 4 ranks: the same losses and tensors. Full
// fine-tuning's file too (llama_tied: its row-parallel biases resumed on rank 0).
TEST(SplitLoraTraining, ASplitRunResumedFromAWholeRunsFileContinuesAsTheWholeRun) {
  for (train::FineTuneType type : {train::FineTuneType::dora, train::FineTuneType::full}) {
    testing::TempDir tmp;
    testing::SplitCase c = adapters("llama_tied", {2, 4}, type);
    if (type == train::FineTuneType::full) c.rates.sgd_lr = 0.5f;
    const train::OptimizerKind sgd = train::OptimizerKind::sgd;
    train::TrainOptions first = testing::run_options(c, sgd, tmp.path / "first");
    first.iters = 3;
    const fs::path file = tmp.path / "first" / "adapters.safetensors";
    {
      models::LoadedModel m = models::load_model(testing::tiny_model_dir(c.model));
      train::DifferentiableTransformer dt(testing::transformer(m));
      train::LoraAdapters a = train::make_lora(testing::transformer(m), c.tuning, kSeed);
      train::train(dt, a, testing::split_train_set(), testing::split_valid_set(), first);
    }
    // Resumed runs start from other seeds: the file's tensors replace every one.
    std::vector<double> losses;
    train::TrainOptions then = testing::run_options(c, sgd, tmp.path / "whole");
    then.iters = 3;
    models::LoadedModel m = models::load_model(testing::tiny_model_dir(c.model));
    train::DifferentiableTransformer dt(testing::transformer(m));
    train::LoraAdapters a = train::make_lora(testing::transformer(m), c.tuning, kSeed + 1);
    train::resume_adapters(file, a);
    const Values initial = testing::values_of(a);
    train::train(dt, a, testing::split_train_set(), testing::split_valid_set(), then, testing::collect(losses));
    const testing::Run whole = testing::read_run(then.adapter_path, losses);
    for (int world : c.worlds) {
      const std::string what =
          std::string("resumed ") + train::fine_tune_type_name(type) + " at " + std::to_string(world) + " ranks";
      SCOPED_TRACE(what);
      auto split = models::TensorParallelLM::load(testing::tiny_model_dir(c.model), {.tensor_parallel = world});
      train::SplitFineTune tune(*split, c.tuning, kSeed + 2);
      tune.resume(file);
      then.adapter_path = tmp.path / std::to_string(world);
      losses.clear();
      tune.train(testing::split_train_set(), testing::split_valid_set(), then, {}, testing::collect(losses));
      testing::expect_replicas_alike(tune);
      testing::expect_same_run(testing::read_run(then.adapter_path, losses), whole, initial, what, 1e-5, 1e-6);
    }
  }
}

// Saved (trained) DoRA adapters and full fine-tuning weights tested on the model split over 2
// and 4 ranks (SplitFineTune::saved: lmx lora --test --tensor-parallel N) give the whole
// model's test loss with them.
TEST(SplitLoraTraining, SavedAdaptersAndWeightsTestOnASplitModelAsOnTheWholeModel) {
  for (train::FineTuneType type : {train::FineTuneType::dora, train::FineTuneType::full}) {
    testing::TempDir tmp;
    testing::SplitCase c = adapters("llama", {2, 4}, type);
    if (type == train::FineTuneType::full) c.rates.sgd_lr = 0.5f;
    models::LoadedModel m = models::load_model(testing::tiny_llama_dir());
    train::DifferentiableTransformer dt(testing::transformer(m));
    train::LoraAdapters a = train::make_lora(testing::transformer(m), c.tuning, kSeed);
    train::train(dt, a, testing::split_train_set(), testing::split_valid_set(),
                 testing::run_options(c, train::OptimizerKind::sgd, tmp.path));
    const double untrained = train::evaluate(dt, nullptr, testing::split_valid_set(), 2, -1, 64, false);
    const train::LoraAdapters loaded = train::load_adapters(tmp.path, testing::transformer(m));
    const double want = train::evaluate(dt, &loaded, testing::split_valid_set(), 2, -1, 64, false);
    EXPECT_GT(std::fabs(want - untrained), 1e-3);  // the training matters
    for (int world : c.worlds) {
      auto split = models::TensorParallelLM::load(testing::tiny_llama_dir(), {.tensor_parallel = world});
      const double got =
          train::SplitFineTune::saved(*split, tmp.path).evaluate(testing::split_valid_set(), 2, -1, 64, false);
      std::printf("saved %s tested at %d ranks: %.6f (whole %.6f, untrained %.6f)\n",
                  train::fine_tune_type_name(type), world, got, want, untrained);
      EXPECT_NEAR(got, want, 1e-6) << train::fine_tune_type_name(type) << " at " << world << " ranks";
    }
  }
}

}  // namespace
}  // namespace lmx
