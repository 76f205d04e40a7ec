// Adapters on a split model (lmx/train/split_adapters.h): LoRA and DoRA adapters on every
// Linear of every block (q / k / v, o_proj, gate / up, down_proj; fused qkv and gate_up;
// row-parallel layers with biases; a mixture of experts' shared expert, router and gate),
// attached to a model split over 2 and 4 ranks (threads of a ThreadGroup), give the whole
// model's logits with the same adapters, full precision and MLX 4-bit; the reference is
// always the whole model. Adapters that do not fit are refused naming the tensor.
#include "lmx/train/split_adapters.h"

#include <gtest/gtest.h>

#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/random.h"
#include "lmx/models/save.h"
#include "lmx/models/tensor_parallel_model.h"
#include "lmx/train/adapter_file.h"
#include "tests/train/train_fixtures.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;
using testing::max_rel_diff;

// Adapters of `type` on every Linear of every block of the model in `model_dir`, with
// random non-zero b (and DoRA magnitudes away from the row norms), saved to `out`.
void save_random_adapters(const fs::path& model_dir, train::FineTuneType type, const fs::path& out) {
  models::LoadedModel whole = models::load_model(model_dir, {.prepare = false});
  auto& model = dynamic_cast<models::TransformerLM&>(*whole.model);
  train::LoraConfig lc = testing::tuning(type, -1, 4);
  lc.scale = 2.0f;
  train::LoraAdapters a = train::make_lora(model, lc, 7);
  ops::RandomGenerator rng(11);
  for (auto& [name, pair] : a.layers) {
    pair.b.set_value(rng.normal(pair.b.shape(), 0.0f, 0.05f));
    if (pair.m.defined()) pair.m.set_value(ops::mul(pair.m.value(), rng.uniform(pair.m.shape(), 0.5f, 1.5f)));
  }
  train::save_adapters(out, a, {});
}

Tensor logits(models::LanguageModel& m, const Tensor& ids) { return m.forward(ids, nullptr, {}); }

// The whole model with the adapters against the split one with them, at 2 and 4 ranks
// (`worlds`); the adapters must change the whole model's logits.
void expect_split_equals_whole(const fs::path& model_dir, const Tensor& ids, const std::vector<int>& worlds,
                               const fs::path& work) {
  for (train::FineTuneType type : {train::FineTuneType::lora, train::FineTuneType::dora}) {
    SCOPED_TRACE(train::fine_tune_type_name(type));
    const fs::path adapters = work / (model_dir.filename().string() + "-" + train::fine_tune_type_name(type));
    save_random_adapters(model_dir, type, adapters);
    models::LoadedModel whole = models::load_model(model_dir);
    const std::vector<float> base = logits(*whole.model, ids).to_float_vector();
    train::attach_adapters(*whole.model, adapters);
    const std::vector<float> want = logits(*whole.model, ids).to_float_vector();
    EXPECT_GT(max_rel_diff(want, base), 1e-3) << "the adapters change the logits";
    for (int world : worlds) {
      auto split = models::TensorParallelLM::load(model_dir, {.tensor_parallel = world});
      train::attach_adapters(*split, adapters);
      const double err = max_rel_diff(logits(*split, ids).to_float_vector(), want);
      EXPECT_LE(err, 2e-5) << model_dir.filename() << " at " << world << " ranks";
      std::printf("%s %s at %d ranks: rel err %.2e\n", model_dir.filename().c_str(), train::fine_tune_type_name(type),
                  world, err);
    }
  }
}

// llama (GQA: kv heads split at 2 ranks, replicated at 4), starcoder2 (biases on every
// projection: the row-parallel ones added once), phi3 (fused qkv and gate_up: b's columns
// of several ranges), qwen2_moe (a shared expert split as a dense MLP; the router and the
// shared expert's gate whole, their adapters whole).
TEST(SplitAdapters, LoraAndDoraOnASplitModelGiveTheWholeModelsLogits) {
  testing::TempDir tmp;
  for (const char* name : {"llama", "starcoder2", "phi3", "qwen2_moe"}) {
    SCOPED_TRACE(name);
    expect_split_equals_whole(testing::tiny_model_dir(name), testing::fixture_tensor("input_ids", name).to(Dtype::i32),
                              {2, 4}, tmp.path);
  }
}

// MLX 4-bit bases (group 32; QLoRA's adapters): 2 ranks (4 would cut o_proj's groups).
TEST(SplitAdapters, AdaptersOnAFourBitSplitModelGiveTheWholeModelsLogits) {
  testing::TempDir tmp;
  models::save_quantized_copy(testing::tiny_llama_dir(), tmp.path / "q4", {.bits = 4, .group_size = 32});
  expect_split_equals_whole(tmp.path / "q4", testing::fixture_tensor("input_ids").to(Dtype::i32), {2}, tmp.path);
}

TEST(SplitAdapters, AdaptersThatDoNotFitAreRefusedNamingTheTensor) {
  testing::TempDir tmp;
  // Against the whole model, before any split: a lora_a of the wrong size.
  models::LoadedModel whole = models::load_model(testing::tiny_llama_dir(), {.prepare = false});
  auto& model = dynamic_cast<models::TransformerLM&>(*whole.model);
  train::LoraAdapters a = train::make_lora(model, testing::tuning(train::FineTuneType::lora, 1, 4), 1);
  const std::string o = "model.layers.1.self_attn.o_proj";
  const int64_t in = a.layers.at(o).a.value().dim(0);
  a.layers.at(o).a = autograd::Var(Tensor::zeros({in + 1, 4}), true);
  train::save_adapters(tmp.path / "bad", a, {});
  auto split = models::TensorParallelLM::load(testing::tiny_llama_dir(), {.tensor_parallel = 2});
  testing::expect_error<FormatError>([&] { train::attach_adapters(*split, tmp.path / "bad"); }, {o + ".lora_a"});
  // Inputs the ranks do not divide, and outputs past a column split's.
  std::map<std::string, models::LayerSplit> plan{{o, {true, {}}}};
  testing::expect_error<InvalidArgument>([&] { train::shard_adapters(a, plan, 0, 2); },
                                         {o + ".lora_a", "not divisible by 2 ranks"});
  plan[o] = {false, {{0, in + 8}}};
  a.layers.at(o).a = autograd::Var(Tensor::zeros({in, 4}), true);
  testing::expect_error<InvalidArgument>([&] { train::shard_adapters(a, plan, 0, 2); }, {o + ".lora_b"});
  // Full fine-tuning's weights are not split yet.
  train::LoraAdapters full = train::make_lora(model, testing::tuning(train::FineTuneType::full, 1), 1);
  train::save_adapters(tmp.path / "full", full, {});
  testing::expect_error<Unsupported>([&] { train::attach_adapters(*split, tmp.path / "full"); }, {"full fine-tuning"});
}

}  // namespace
}  // namespace lmx
