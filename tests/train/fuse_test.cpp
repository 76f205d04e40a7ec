// Fusing adapters, and QLoRA, on stories260K: the fused model generates the tokens the
// base model with attached adapters generates; a 4-bit copy trains with its base packed,
// and its adapters fused with --dequantize give the logits of base + adapters.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "lmx/base/thread_pool.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/ops/random.h"
#include "lmx/generate/generate.h"
#include "lmx/models/quantize.h"
#include "lmx/models/save.h"
#include "lmx/train/adapter_file.h"
#include "lmx/train/fuse.h"
#include "lmx/train/trainer.h"
#include "tests/generate/test_models.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;

struct Work {
  fs::path dir = fs::temp_directory_path() / ("lmx-fuse-" + std::to_string(::getpid()) + "-" +
                                              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  Work() {
    ThreadPool::set_global_threads(1);  // a 260K-parameter model: one thread is fastest
    const fs::path src = testing::shared_data("models/stories260K");
    io::import_llama2c(src / "stories260K.bin", src / "tok512.bin", dir / "model");
  }
  ~Work() {
    fs::remove_all(dir);
    ThreadPool::set_global_threads(0);
  }
};

std::vector<int32_t> greedy(generate::ModelContainer& c, int64_t n) {
  generate::GenerateParameters p;
  p.temperature = 0.0f;
  p.max_tokens = n;
  generate::Generation gen(c.model(), c.tokenizer(), {1}, p, generate::GenerateOptions{});
  while (gen.next()) {
  }
  return gen.tokens();
}

models::TransformerLM& lm(generate::ModelContainer& c) { return dynamic_cast<models::TransformerLM&>(c.model()); }

// Adapters on every Linear with random non-zero b, saved to dir.
void make_saved_adapters(models::TransformerLM& model, const fs::path& dir) {
  train::LoraConfig lc;
  lc.num_layers = -1;
  lc.scale = 5.0f;
  train::LoraAdapters a = train::make_lora(model, lc, 4);
  ops::RandomGenerator rng(5);
  for (auto& [name, pair] : a.layers) pair.b.set_value(rng.normal(pair.b.shape(), 0.0f, 0.05f));
  train::save_adapters(dir, a, {});
}

void fuse_into(const fs::path& model_dir, const fs::path& adapters, const fs::path& out, bool dequantize) {
  auto loaded = models::load_model(model_dir, {.prepare = false});
  auto& model = dynamic_cast<models::TransformerLM&>(*loaded.model);
  train::fuse_adapters(model, train::load_adapters(adapters, model), dequantize);
  models::SaveOptions o;
  o.drop_quantization = dequantize;
  models::save_model(model, model_dir, out, o);
}

TEST(Stories260KFuse, FusedModelGeneratesTheTokensOfBasePlusAdapters) {
  LMX_REQUIRE_STORIES();
  Work w;
  auto base = generate::ModelContainer::load((w.dir / "model").string());
  const auto base_tokens = greedy(*base, 40);
  make_saved_adapters(lm(*base), w.dir / "adapters");
  train::attach_adapters(base->model(), w.dir / "adapters");
  const auto adapted_tokens = greedy(*base, 40);
  EXPECT_NE(adapted_tokens, base_tokens);  // the adapters matter
  fuse_into(w.dir / "model", w.dir / "adapters", w.dir / "fused", false);
  auto fused = generate::ModelContainer::load((w.dir / "fused").string());
  EXPECT_EQ(greedy(*fused, 40), adapted_tokens);
}

TEST(Stories260KFuse, QLoraTrainsAFourBitCopyAndDequantizedFuseKeepsItsLogits) {
  LMX_REQUIRE_STORIES();
  Work w;
  models::save_quantized_copy(w.dir / "model", w.dir / "q4", {.bits = 4, .group_size = 32});
  auto c = generate::ModelContainer::load((w.dir / "q4").string());
  auto& model = lm(*c);
  int quantized = 0;
  for (auto& [path, l] : train::linear_layers(model)) quantized += l->weight().quantized();
  EXPECT_GE(quantized, 25);  // q/k/v/o/gate/up of 5 blocks (down's 172 inputs have no group of 32)

  nlohmann::json rec;
  std::string text;
  for (int i = 0; i < 96; ++i) {
    const char* names[] = {"Lily", "Tom", "Sue", "Ben"};
    const char* things[] = {"ball", "kite", "cat", "dog", "box", "cake"};
    rec["text"] = std::string(names[i % 4]) + " had a " + things[(i / 4) % 6] + ". " + names[i % 4] + " took the " +
                  things[(i / 4) % 6] + " to the park.";
    text += rec.dump() + "\n";
  }
  std::ofstream(w.dir / "train.jsonl") << text;
  const auto data = train::load_jsonl(w.dir / "train.jsonl", *c);
  train::LoraConfig lc;
  lc.num_layers = -1;
  train::LoraAdapters a = train::make_lora(model, lc, 0);
  train::TrainOptions o;
  o.iters = 60;
  o.schedule.peak = 5e-4f;
  o.val_batches = 8;
  o.adapter_path = w.dir / "adapters";
  train::DifferentiableTransformer dt(model);
  const train::TrainResult r = train::train(dt, a, data, data, o);
  std::printf("QLoRA stories260K 4-bit: loss %.3f -> %.3f\n", r.initial_validation_loss, r.final_validation_loss);
  EXPECT_LT(r.final_validation_loss, 0.6 * r.initial_validation_loss);
  for (auto& [path, l] : train::linear_layers(model)) {
    if (l->weight().quantized()) {
      EXPECT_TRUE(l->weight().quant().prepared) << path << " stayed packed";
    }
  }

  const ops::QuantActivations saved = ops::quant_activations();
  ops::set_quant_activations(ops::QuantActivations::f32);
  Tensor ids = Tensor::from_vector<int32_t>({1, 403, 261, 45, 300, 17, 90, 311}, {1, 8});
  a.attach(model);
  const auto want = model.forward(ids, nullptr, {}).to_float_vector();
  fuse_into(w.dir / "q4", w.dir / "adapters", w.dir / "fused", /*dequantize=*/true);
  auto fused = models::load_model(w.dir / "fused");
  for (auto& [path, l] : train::linear_layers(dynamic_cast<models::TransformerLM&>(*fused.model)))
    EXPECT_FALSE(l->weight().quantized()) << path;
  const auto got = fused.model->forward(ids, nullptr, {}).to_float_vector();
  ops::set_quant_activations(saved);
  double err = 0, scale = 1;
  for (size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, static_cast<double>(std::fabs(got[i] - want[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(want[i])));
  }
  EXPECT_LT(err / scale, 1e-4);
}

}  // namespace
}  // namespace lmx
