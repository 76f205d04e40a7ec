// LoRA, DoRA and full fine-tuning on the tiny llama fixture against plain PyTorch
// (tools/fixtures/lora_reference.py --kind K, whose own llama first reproduces
// transformers' logits): the loss and the gradient of every trained tensor of one masked
// step, and the losses of 20 AdamW steps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "lmx/core/autograd/functions.h"
#include "lmx/core/autograd/grad_scope.h"
#include "lmx/train/adapter_file.h"
#include "lmx/train/differentiable_transformer.h"
#include "lmx/train/optimizer.h"
#include "tests/train/train_fixtures.h"

namespace lmx {
namespace {

using testing::reference;
using testing::rel_err;

std::filesystem::path data_dir(const std::string& kind) {
  return std::filesystem::path(LMX_SOURCE_DIR) / ("tests/data/train/llama_" + kind);
}


train::LoraAdapters trained(const std::string& kind, models::TransformerLM& model) {
  if (kind != "full") return train::load_adapters(data_dir(kind), model);
  return train::make_lora(model, testing::tuning(train::FineTuneType::full, 1), 0);
}

struct Step {
  explicit Step(const std::string& kind)
      : adapters(trained(kind, model)), ref(io::SafetensorsFile::open(data_dir(kind) / "reference.safetensors")) {
    Tensor ids = testing::fixture_tensor("input_ids").to(Dtype::i32);
    inputs = ids.slice(1, 0, ids.dim(1) - 1).contiguous();
    targets = reference(ref, "targets").to(Dtype::i32);
    weights = reference(ref, "weights");
  }
  models::LoadedModel loaded = testing::load_tiny_llama();
  models::TransformerLM& model = testing::transformer(loaded);
  train::DifferentiableTransformer dt{model};
  train::LoraAdapters adapters;
  io::SafetensorsFile ref;
  Tensor inputs, targets, weights;
  autograd::Var loss() {
    autograd::Var logits = dt.forward(inputs, &adapters, nullptr);
    return autograd::cross_entropy(autograd::reshape(logits, {-1, logits.shape().back()}), targets, weights);
  }
};


class TorchReference : public ::testing::TestWithParam<const char*> {};

TEST_P(TorchReference, LossAndEveryGradientOfOneStep) {
  Step s(GetParam());
  const size_t tensors = s.adapters.named_parameters().size();
  ASSERT_EQ(tensors, std::string(GetParam()) == "lora" ? 28u : std::string(GetParam()) == "dora" ? 42u : 9u);
  {
    autograd::GradScope scope;
    autograd::Var l = s.loss();
    EXPECT_NEAR(l.value().item<double>(), reference(s.ref, "loss").item<double>(), 1e-5);
    autograd::backward(l);
  }
  double worst = 0.0;
  for (const auto& [name, var] : s.adapters.named_parameters()) {
    const auto want = reference(s.ref, "grad." + name).to_float_vector();
    const double err = rel_err(var->grad().to_float_vector(), want);
    EXPECT_LE(err, 1e-4) << name;
    worst = std::max(worst, err);
  }
  std::printf("%s: %zu gradients, largest relative error to torch %.2e\n", GetParam(), tensors, worst);
}

TEST_P(TorchReference, TwentyAdamWSteps) {
  Step s(GetParam());
  train::OptimizerOptions o;
  o.kind = train::OptimizerKind::adamw;
  o.weight_decay = 0.01f;
  train::Optimizer opt(s.adapters.parameters(), o);
  const auto want = reference(s.ref, "adamw_losses").to_float_vector();
  ASSERT_EQ(want.size(), 20u);
  double worst = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    autograd::GradScope scope;
    autograd::Var l = s.loss();
    worst = std::max(worst, std::fabs(l.value().item<double>() - want[i]) / std::fabs(want[i]));
    EXPECT_NEAR(l.value().item<double>(), want[i], 1e-3 * std::fabs(want[i])) << "step " << i;
    autograd::backward(l);
    opt.step(1e-3f);
    opt.zero_grad();
  }
  std::printf("%s: 20 AdamW steps, losses %.4f -> %.4f, largest relative difference to torch %.2e\n", GetParam(),
              want.front(), want.back(), worst);
}

INSTANTIATE_TEST_SUITE_P(Kinds, TorchReference, ::testing::Values("lora", "dora", "full"));

}  // namespace
}  // namespace lmx
