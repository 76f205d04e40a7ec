// The training loop's options on the tiny llama fixture: gradient accumulation averages
// the gradients of N batches into one update, a stop request ends training with the
// adapters saved, and --resume-adapter-file restores them (or lists what does not fit).
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <unistd.h>

#include "lmx/base/error.h"
#include "lmx/core/ops/random.h"
#include "lmx/io/safetensors.h"
#include "lmx/train/adapter_file.h"
#include "lmx/train/trainer.h"
#include "tests/train/train_fixtures.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

// Four random sequences of 10 tokens: with batch_size 4, every step sees the same batch.
std::vector<train::Example> one_batch() {
  std::vector<train::Example> out;
  ops::RandomGenerator rng(17);
  const auto ids = rng.uniform({4, 10}, 3.0f, 250.0f).to_float_vector();
  for (int e = 0; e < 4; ++e) {
    train::Example ex;
    for (int t = 0; t < 10; ++t) ex.tokens.push_back(static_cast<int32_t>(ids[static_cast<size_t>(e * 10 + t)]));
    out.push_back(ex);
  }
  return out;
}

train::TrainOptions options(int64_t iters, int64_t accumulation) {
  train::TrainOptions o;
  o.batch_size = 4;
  o.iters = iters;
  o.grad_accumulation_steps = accumulation;
  o.steps_per_report = 100;
  o.steps_per_eval = 0;
  o.save_every = 0;
  o.optimizer.kind = train::OptimizerKind::sgd;  // scale-sensitive, unlike Adam
  o.schedule.peak = 0.5f;
  return o;
}

std::vector<float> values(train::LoraAdapters& a) {
  std::vector<float> out;
  for (auto* p : a.parameters()) {
    auto v = p->value().to_float_vector();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

train::LoraAdapters dora(models::TransformerLM& model) {
  return train::make_lora(model, testing::tuning(train::FineTuneType::dora, 1, 2), 6);
}

TEST(TrainerOptions, AccumulatingTwoEqualBatchesIsOneUpdateOnTheirMeanGradient) {
  auto m = testing::load_tiny_llama();
  auto& model = testing::transformer(m);
  train::DifferentiableTransformer dt(model);
  const auto data = one_batch();
  train::LoraAdapters plain = dora(model), accumulated = dora(model), fresh = dora(model);
  train::train(dt, plain, data, data, options(3, 1));
  train::train(dt, accumulated, data, data, options(6, 2));
  const auto want = values(plain), got = values(accumulated), start = values(fresh);
  double diff = 0, moved = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(got[i] - want[i])));
    moved = std::max(moved, static_cast<double>(std::fabs(want[i] - start[i])));
  }
  EXPECT_LT(diff, 1e-5);
  EXPECT_GT(moved, 1e-3);
  EXPECT_THROW(train::train(dt, plain, data, data, options(2, 0)), InvalidArgument);
}

TEST(TrainerOptions, StopRequestSavesAndResumeRestores) {
  TempDir tmp;
  auto m = testing::load_tiny_llama();
  auto& model = testing::transformer(m);
  train::DifferentiableTransformer dt(model);
  const auto data = one_batch();
  train::LoraAdapters a = dora(model);
  train::TrainOptions o = options(100, 1);
  o.adapter_path = tmp.path;
  o.steps_per_report = 1;
  int polls = 0;
  o.stop_requested = [&] { return ++polls == 3; };
  const train::TrainResult r = train::train(dt, a, data, data, o);
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.iterations, 3);
  ASSERT_TRUE(fs::exists(tmp.path / "0000003_adapters.safetensors"));
  {  // the loss curve beside them: the 3 training losses and the first validation loss
    std::ifstream in(tmp.path / "loss_curve.svg");
    const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(svg.find("<polyline class=\"train\""), std::string::npos);
    EXPECT_NE(svg.find("<polyline class=\"validation\""), std::string::npos);
  }

  train::LoraAdapters resumed = dora(model);
  train::resume_adapters(tmp.path / "0000003_adapters.safetensors", resumed);
  EXPECT_EQ(values(resumed), values(a));

  // Plain LoRA adapters cannot resume from DoRA's file: each extra magnitude is named.
  train::LoraAdapters lora = train::make_lora(model, testing::tuning(train::FineTuneType::lora, 1, 2), 6);
  testing::expect_error<FormatError>([&] { train::resume_adapters(tmp.path / "adapters.safetensors", lora); },
                        {(tmp.path / "adapters.safetensors").string(),
                         "'model.layers.1.mlp.up_proj.m' is not one of these adapters' tensors"});
  // Another rank: every shape is listed.
  train::LoraAdapters wider = train::make_lora(model, testing::tuning(train::FineTuneType::dora, 1, 3), 6);
  testing::expect_error<FormatError>([&] { train::resume_adapters(tmp.path / "adapters.safetensors", wider); },
                        {"'model.layers.1.self_attn.q_proj.lora_a': f32 [64, 2], training needs a float [64, 3]"});
}

}  // namespace
}  // namespace lmx
