// LoRA on the tiny llama fixture against plain PyTorch (tools/fixtures/lora_reference.py,
// whose own llama first reproduces transformers' logits): the loss and the gradient of
// every lora_a / lora_b of one masked step, and the losses of 20 AdamW steps.
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

const std::filesystem::path kDir = std::filesystem::path(LMX_SOURCE_DIR) / "tests/data/train/llama_lora";

Tensor reference(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorInfo& info = f.at(name);
  return Tensor::wrap(const_cast<std::byte*>(info.data), info.shape, info.dtype, f.owner()).clone();
}

struct Step {
  models::LoadedModel loaded = testing::load_tiny_llama();
  models::TransformerLM& model = testing::transformer(loaded);
  train::DifferentiableTransformer dt{model};
  train::LoraAdapters adapters = train::load_adapters(kDir, model);
  io::SafetensorsFile ref = io::SafetensorsFile::open(kDir / "reference.safetensors");
  Tensor inputs, targets, weights;
  Step() {
    Tensor ids = testing::fixture_tensor("input_ids").to(Dtype::i32);
    inputs = ids.slice(1, 0, ids.dim(1) - 1).contiguous();
    targets = reference(ref, "targets").to(Dtype::i32);
    weights = reference(ref, "weights");
  }
  autograd::Var loss() {
    autograd::Var logits = dt.forward(inputs, &adapters, nullptr);
    return autograd::cross_entropy(autograd::reshape(logits, {-1, logits.shape().back()}), targets, weights);
  }
};

double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num = std::max(num, static_cast<double>(std::fabs(got[i] - want[i])));
    den = std::max(den, static_cast<double>(std::fabs(want[i])));
  }
  return num / den;
}

TEST(TorchReference, LossAndEveryLoraGradientOfOneStep) {
  Step s;
  ASSERT_EQ(s.adapters.layers.size(), 14u);
  {
    autograd::GradScope scope;
    autograd::Var l = s.loss();
    EXPECT_NEAR(l.value().item<double>(), reference(s.ref, "loss").item<double>(), 1e-5);
    autograd::backward(l);
  }
  double worst = 0.0;
  for (const auto& [name, pair] : s.adapters.layers) {
    const auto ga = reference(s.ref, "grad." + name + ".lora_a").to_float_vector();
    const auto gb = reference(s.ref, "grad." + name + ".lora_b").to_float_vector();
    EXPECT_LE(rel_err(pair.a.grad().to_float_vector(), ga), 1e-4) << name << ".lora_a";
    EXPECT_LE(rel_err(pair.b.grad().to_float_vector(), gb), 1e-4) << name << ".lora_b";
    worst = std::max({worst, rel_err(pair.a.grad().to_float_vector(), ga), rel_err(pair.b.grad().to_float_vector(), gb)});
  }
  std::printf("28 LoRA gradients: largest relative error to torch %.2e\n", worst);
}

TEST(TorchReference, TwentyAdamWSteps) {
  Step s;
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
  std::printf("20 AdamW steps: losses %.4f -> %.4f, largest relative difference to torch %.2e\n", want.front(),
              want.back(), worst);
}

}  // namespace
}  // namespace lmx
