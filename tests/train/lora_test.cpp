// The differentiable forward against transformers' logits and the inference path, LoRA
// applied by Linear (inference) and by the training forward alike, and the gradient of a
// whole model's loss w.r.t. its adapters against finite differences.
#include <gtest/gtest.h>

#include <cmath>

#include "lmx/core/autograd/functions.h"
#include "lmx/core/autograd/grad_scope.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/ops/random.h"
#include "lmx/models/quantize.h"
#include "lmx/train/differentiable_transformer.h"
#include "tests/core/test_util.h"
#include "tests/train/train_fixtures.h"

namespace lmx {
namespace {

using testing::max_rel_diff;


// Adapters with random (non-zero) b, so they change the output.
train::LoraAdapters random_adapters(models::TransformerLM& model, int64_t num_layers, uint64_t seed) {
  train::LoraConfig c;
  c.rank = 4;
  c.scale = 2.0f;
  c.num_layers = num_layers;
  train::LoraAdapters a = train::make_lora(model, c, seed);
  ops::RandomGenerator rng(seed + 7);
  for (auto& [name, pair] : a.layers) pair.b.set_value(rng.uniform(pair.b.shape(), -0.2f, 0.2f));
  return a;
}

// The fixtures the training forward covers, each with the features it adds: llama (GQA,
// llama3 RoPE), qwen2 (q/k/v biases, tied head), gemma2 (unit-offset sandwich norms,
// gelu-tanh, embedding scale, alternating sliding windows of 4, attention and final
// soft-capping), qwen3_moe (q/k norms, top-2 softmax routing over 4 experts).
class Architecture : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Fixtures, Architecture, ::testing::Values("llama", "qwen2", "gemma2", "qwen3_moe"));

void expect_transformers_logits(const std::string& name) {
  auto m = testing::load_tiny(name);
  train::DifferentiableTransformer dt(testing::transformer(m));
  Tensor ids = testing::fixture_tensor("input_ids", name);
  Tensor want = testing::fixture_tensor("logits", name);
  autograd::Var logits = dt.forward(ids, nullptr, nullptr);
  EXPECT_LT(max_rel_diff(logits.value().to_float_vector(), want.to_float_vector()), 1e-4);
}
TEST_P(Architecture, ReproducesTransformersLogits) { expect_transformers_logits(GetParam()); }

class ArchitectureLogits : public ::testing::TestWithParam<std::string> {};
TEST_P(ArchitectureLogits, ReproducesTransformersLogits) { expect_transformers_logits(GetParam()); }
// More families the same switches build, against their transformers logits (no adapters).
INSTANTIATE_TEST_SUITE_P(More, ArchitectureLogits,
                         ::testing::Values("mistral", "ministral", "qwen3", "gemma", "gemma3_text", "mixtral", "olmoe",
                                           "smollm3", "granite", "exaone4", "helium", "olmo2", "minicpm"));

TEST_P(Architecture, TrainingForwardEqualsInferenceWithAttachedAdapters) {
  auto m = testing::load_tiny(GetParam());
  auto& model = testing::transformer(m);
  train::LoraAdapters a = random_adapters(model, -1, 3);
  train::DifferentiableTransformer dt(model);
  Tensor ids = testing::fixture_tensor("input_ids", GetParam());
  auto trained = dt.forward(ids, &a, nullptr).value().to_float_vector();
  a.attach(model);
  auto inference = model.forward(ids, nullptr, {}).to_float_vector();
  EXPECT_LT(max_rel_diff(trained, inference), 1e-5);
  Tensor base = testing::fixture_tensor("logits", GetParam());
  EXPECT_GT(max_rel_diff(inference, base.to_float_vector()), 1e-3);  // the adapters did change the logits
  train::LoraAdapters::detach(model);
  EXPECT_LT(max_rel_diff(model.forward(ids, nullptr, {}).to_float_vector(), base.to_float_vector()), 1e-4);
}

// --grad-checkpoint recomputes each block in the backward; with dropout the second run
// must replay the first run's draws. Adapters on the last block only (the blocks below
// are checkpointed with nothing to train), then on all: the loss and every gradient bit
// for bit as the plain path's, and the generator left where the plain path leaves it.
TEST_P(Architecture, GradCheckpointWithDropoutGivesThePlainGradients) {
  auto m = testing::load_tiny(GetParam());
  auto& model = testing::transformer(m);
  Tensor ids = testing::fixture_tensor("input_ids", GetParam());
  Tensor inputs = ids.slice(1, 0, ids.dim(1) - 1).contiguous();
  Tensor targets = ids.slice(1, 1, ids.dim(1)).contiguous().reshape({-1});
  Tensor weights = Tensor::full({targets.numel()}, 1.0);
  for (int64_t layers : {1, -1}) {
    std::vector<std::vector<float>> grads[2];
    double losses[2] = {0, 0};
    uint64_t counters[2] = {0, 0};
    for (int checkpointed = 0; checkpointed < 2; ++checkpointed) {
      train::LoraAdapters a = random_adapters(model, layers, 5);
      a.config.dropout = 0.3f;
      train::DifferentiableTransformer dt(model, {.grad_checkpoint = checkpointed == 1});
      ops::RandomGenerator rng(11);
      {
        autograd::GradScope scope;
        autograd::Var logits = dt.forward(inputs, &a, &rng);
        autograd::Var l =
            autograd::cross_entropy(autograd::reshape(logits, {-1, logits.shape().back()}), targets, weights);
        losses[checkpointed] = l.value().item<double>();
        autograd::backward(l);
      }
      counters[checkpointed] = rng.counter();
      for (auto* p : a.parameters()) grads[checkpointed].push_back(p->grad().to_float_vector());
    }
    EXPECT_EQ(losses[0], losses[1]) << layers;
    EXPECT_EQ(counters[0], counters[1]) << layers;
    ASSERT_EQ(grads[0].size(), grads[1].size());
    for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_EQ(grads[0][i], grads[1][i]) << layers << " " << i;
  }
}

TEST(Lora, MakeLoraFollowsMlxInitAndLayerChoice) {
  auto m = testing::load_tiny_llama();
  auto& model = testing::transformer(m);
  train::LoraConfig c;
  c.rank = 3;
  c.num_layers = 1;
  c.keys = {"self_attn.q_proj", "mlp.down_proj"};
  train::LoraAdapters a = train::make_lora(model, c, 1);
  ASSERT_EQ(a.layers.size(), 2u);
  const auto& q = a.layers.at("model.layers.1.self_attn.q_proj");
  EXPECT_EQ(q.a.shape(), (Shape{64, 3}));
  EXPECT_EQ(q.b.shape(), (Shape{3, 64}));
  for (float v : q.a.value().to_float_vector()) EXPECT_LE(std::fabs(v), 1.0f / 8.0f);  // U(+-1/sqrt(in))
  for (float v : q.b.value().to_float_vector()) EXPECT_EQ(v, 0.0f);
  EXPECT_EQ(a.layers.at("model.layers.1.mlp.down_proj").a.shape(), (Shape{128, 3}));
  c.keys = {"self_attn.nope"};
  EXPECT_THROW(train::make_lora(model, c, 1), InvalidArgument);
  c.keys = {};
  c.num_layers = 3;
  EXPECT_THROW(train::make_lora(model, c, 1), InvalidArgument);
  c.num_layers = 2;
  EXPECT_EQ(train::make_lora(model, c, 1).layers.size(), 14u);  // 7 Linear layers a block
}

TEST(Lora, LinearAppliesTheAdapterAsADoubleReference) {
  nn::Linear l(6, 5, true);
  auto params = l.parameters();
  Tensor w = testing::random_tensor({5, 6}, 1), b = testing::random_tensor({5}, 2);
  *params[0].tensor = w;
  *params[1].tensor = b;
  auto lora = std::make_shared<nn::LoraWeights>();
  lora->a = testing::random_tensor({6, 2}, 3);
  lora->b = testing::random_tensor({2, 5}, 4);
  lora->scale = 1.7f;
  l.set_lora(lora);
  Tensor x = testing::random_tensor({3, 6}, 5);
  auto got = l.forward(x).to_float_vector();
  auto xv = x.to_float_vector(), wv = w.to_float_vector(), bv = b.to_float_vector();
  auto av = lora->a.to_float_vector(), bbv = lora->b.to_float_vector();
  for (int r = 0; r < 3; ++r)
    for (int o = 0; o < 5; ++o) {
      double y = bv[o];
      for (int i = 0; i < 6; ++i) y += static_cast<double>(xv[r * 6 + i]) * wv[o * 6 + i];
      double d = 0;
      for (int k = 0; k < 2; ++k) {
        double xa = 0;
        for (int i = 0; i < 6; ++i) xa += static_cast<double>(xv[r * 6 + i]) * av[i * 2 + k];
        d += xa * bbv[k * 5 + o];
      }
      EXPECT_NEAR(got[r * 5 + o], y + 1.7 * d, 1e-4) << r << "," << o;
    }
}

// Loss of the whole model as a function of one adapter element, by central differences
// in f32 (h large enough to stay above rounding): a check of the chain through every
// layer, on the elements with the largest gradients.
void check_model_gradient(models::TransformerLM& model, double tol, const std::string& fixture = "llama",
                          const std::vector<std::string>& layers = {"model.layers.0.self_attn.k_proj",
                                                                    "model.layers.0.mlp.gate_proj",
                                                                    "model.layers.1.self_attn.v_proj"},
                          float step = 1e-2f) {
  train::LoraAdapters a = random_adapters(model, -1, 11);
  train::DifferentiableTransformer dt(model);
  Tensor ids = testing::fixture_tensor("input_ids", fixture).to(Dtype::i32);  // [2, 12]
  const int64_t B = ids.dim(0), L = ids.dim(1);
  Tensor inputs = ids.slice(1, 0, L - 1).contiguous();
  Tensor targets = ids.slice(1, 1, L).contiguous().reshape({-1});
  std::vector<float> w(static_cast<size_t>(B * (L - 1)), 1.0f);
  w[3] = 0.0f;
  Tensor weights = Tensor::from_vector(w, {B * (L - 1)});
  auto loss = [&]() {
    autograd::Var logits = dt.forward(inputs, &a, nullptr);
    return autograd::cross_entropy(autograd::reshape(logits, {-1, logits.shape().back()}), targets, weights);
  };
  {
    autograd::GradScope scope;
    autograd::backward(loss());
  }
  int checked = 0;
  for (const std::string& layer : layers) {
    for (autograd::Var* p : {&a.layers.at(layer).a, &a.layers.at(layer).b}) {
      std::vector<float> g = p->grad().to_float_vector();
      size_t best = 0;
      for (size_t i = 0; i < g.size(); ++i)
        if (std::fabs(g[i]) > std::fabs(g[best])) best = i;
      std::vector<float> v = p->value().to_float_vector();
      const float h = step, orig = v[best];
      v[best] = orig + h;
      p->set_value(Tensor::from_vector(v, p->shape()));
      const double up = loss().value().item<double>();
      v[best] = orig - h;
      p->set_value(Tensor::from_vector(v, p->shape()));
      const double down = loss().value().item<double>();
      v[best] = orig;
      p->set_value(Tensor::from_vector(v, p->shape()));
      const double num = (up - down) / (2 * h);
      EXPECT_NEAR(g[best], num, tol * std::fabs(num) + 1e-5) << layer;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 6);
}

TEST_P(Architecture, WholeModelGradientMatchesFiniteDifferences) {
  auto m = testing::load_tiny(GetParam(), /*prepare=*/false);
  // qwen3_moe: the router's adapter (its gradient flows through the top-2 softmax weights).
  const std::string mid = GetParam() == "qwen3_moe" ? "model.layers.0.mlp.gate" : "model.layers.0.mlp.gate_proj";
  const std::string last = GetParam() == "gemma2" ? "model.layers.2.self_attn.v_proj" : "model.layers.1.self_attn.v_proj";
  float step = 1e-2f;
  if (GetParam() == "qwen3_moe") {
    // The loss jumps where a token's top-2 experts change. The fixture's router is near
    // uniform (init std 0.02: many near ties), so the router is scaled up to give clear
    // margins, and the step is smaller, so that no choice flips between the evaluations.
    for (auto& slot : m.model->parameters())
      if (slot.name.ends_with("mlp.gate.weight")) *slot.tensor = ops::mul(*slot.tensor, 10.0);
    step = 3e-3f;
  }
  m.model->prepare_for_inference();
  check_model_gradient(testing::transformer(m), 2e-2, GetParam(), {"model.layers.0.self_attn.k_proj", mid, last}, step);
}

TEST(Lora, QLoraGradientMatchesFiniteDifferencesWithThePackedBase) {
  // Exact f32 activations in the quantized kernels, so the finite differences see no
  // int16 rounding of x.
  const ops::QuantActivations saved = ops::quant_activations();
  ops::set_quant_activations(ops::QuantActivations::f32);
  auto m = testing::load_quantized("llama", 4, 32);
  auto& model = testing::transformer(m);
  for (auto& [path, l] : train::linear_layers(model)) ASSERT_TRUE(l->weight().quantized()) << path;
  check_model_gradient(model, 2e-2);
  ops::set_quant_activations(saved);
}

}  // namespace
}  // namespace lmx
