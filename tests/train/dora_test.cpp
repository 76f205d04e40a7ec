// DoRA applied three ways (the training forward, a Linear at inference, fused weights)
// gives the same logits, dense and on a 4-bit base; PEFT folders round-trip bit for bit
// and bad ones are refused naming the file and field; full fine-tuning's weights attach.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/random.h"
#include "lmx/io/safetensors.h"
#include "lmx/io/safetensors_writer.h"
#include "lmx/train/adapter_file.h"
#include "lmx/train/differentiable_transformer.h"
#include "lmx/train/fuse.h"
#include "lmx/train/peft_adapter.h"
#include "tests/train/train_fixtures.h"

namespace lmx {
namespace {

using testing::max_rel_diff;

namespace fs = std::filesystem;

const fs::path kDora = fs::path(LMX_SOURCE_DIR) / "tests/data/train/llama_dora";

using testing::expect_error;
using testing::TempDir;


// The training forward, then attached at inference, then fused: all three logits agree.
void check_three_ways(models::TransformerLM& model, const train::LoraAdapters& a, double tol) {
  train::DifferentiableTransformer dt(model);
  Tensor ids = testing::fixture_tensor("input_ids");
  const auto base = model.forward(ids, nullptr, {}).to_float_vector();
  const auto trained = dt.forward(ids, &a, nullptr).value().to_float_vector();
  EXPECT_GT(max_rel_diff(trained, base), 1e-3);  // the adapters change the logits
  a.attach(model);
  EXPECT_LT(max_rel_diff(model.forward(ids, nullptr, {}).to_float_vector(), trained), tol);
  train::fuse_adapters(model, a, /*dequantize=*/true);
  for (auto& [path, l] : train::linear_layers(model)) EXPECT_FALSE(l->lora()) << path;
  EXPECT_LT(max_rel_diff(model.forward(ids, nullptr, {}).to_float_vector(), trained), tol);
}

TEST(Dora, TrainingInferenceAndFusedLogitsAgree) {
  auto m = testing::load_tiny_llama();
  auto& model = testing::transformer(m);
  train::LoraAdapters a = train::load_adapters(kDora, model);
  ASSERT_EQ(a.config.type, train::FineTuneType::dora);
  check_three_ways(model, a, 1e-5);
}

TEST(Dora, BiasAndTiedHeadOnAFourBitBase) {
  auto m = testing::load_quantized("llama_tied", 4, 32);
  auto& model = testing::transformer(m);
  train::LoraConfig c = testing::tuning(train::FineTuneType::dora, 2, 3);
  c.scale = 1.5f;
  train::LoraAdapters a = train::make_lora(model, c, 4);
  ops::RandomGenerator rng(8);
  for (auto& [name, pair] : a.layers) {
    pair.b.set_value(rng.uniform(pair.b.shape(), -0.2f, 0.2f));
    pair.m.set_value(ops::mul(pair.m.value(), ops::add(rng.uniform(pair.m.shape(), -0.2f, 0.2f), 1.0)));
  }
  check_three_ways(model, a, 1e-4);
}

TEST(Dora, NewMagnitudeIsTheRowNormSoTheModelStartsUnchanged) {
  auto m = testing::load_tiny_llama();
  auto& model = testing::transformer(m);
  train::LoraAdapters a = train::make_lora(model, testing::tuning(train::FineTuneType::dora, 1), 1);
  const auto& pair = a.layers.at("model.layers.1.mlp.down_proj");
  const Tensor w = train::linear_layers(model).at("model.layers.1.mlp.down_proj")->weight().dense();
  const auto wv = w.to_float_vector(), mv = pair.m.value().to_float_vector();
  ASSERT_EQ(mv.size(), static_cast<size_t>(w.dim(0)));
  for (int64_t r = 0; r < w.dim(0); r += 7) {
    double sq = 0;
    for (int64_t k = 0; k < w.dim(1); ++k) sq += double(wv[r * w.dim(1) + k]) * wv[r * w.dim(1) + k];
    EXPECT_NEAR(mv[r], std::sqrt(sq), 1e-5 * std::sqrt(sq)) << r;
  }
  train::DifferentiableTransformer dt(model);
  Tensor ids = testing::fixture_tensor("input_ids");
  EXPECT_LT(max_rel_diff(dt.forward(ids, &a, nullptr).value().to_float_vector(),
                         testing::fixture_tensor("logits").to_float_vector()),
            1e-4);
}

TEST(Peft, ExportAndImportRoundTripBitForBit) {
  TempDir tmp;
  auto m = testing::load_tiny_llama();
  auto& model = testing::transformer(m);
  train::LoraAdapters a = train::load_adapters(kDora, model);
  train::save_peft_adapters(tmp.path, a, "tiny-llama");
  auto f = io::SafetensorsFile::open(tmp.path / "adapter_model.safetensors");
  EXPECT_EQ(f.size(), 42u);
  EXPECT_EQ(f.at("base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight").shape, (std::vector<int64_t>{4, 64}));
  EXPECT_EQ(f.at("base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight").shape, (std::vector<int64_t>{32, 4}));
  EXPECT_EQ(f.at("base_model.model.model.layers.0.self_attn.k_proj.lora_magnitude_vector").shape, (std::vector<int64_t>{32}));
  nlohmann::json cfg;
  std::ifstream(tmp.path / "adapter_config.json") >> cfg;
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["r"], 4);
  EXPECT_EQ(cfg["lora_alpha"], 8.0);  // scale 2 * rank 4
  EXPECT_EQ(cfg["use_dora"], true);
  EXPECT_EQ(cfg["target_modules"].size(), 7u);

  ASSERT_TRUE(train::is_peft_adapter(tmp.path));
  train::LoraAdapters back = train::load_adapters(tmp.path, model);
  EXPECT_EQ(back.config.type, train::FineTuneType::dora);
  EXPECT_EQ(back.config.rank, 4);
  EXPECT_EQ(back.config.scale, 2.0f);
  EXPECT_EQ(back.config.num_layers, 2);
  ASSERT_EQ(back.layers.size(), a.layers.size());
  for (const auto& [name, pair] : a.layers) {
    const auto& b = back.layers.at(name);
    EXPECT_EQ(b.a.value().to_float_vector(), pair.a.value().to_float_vector()) << name;
    EXPECT_EQ(b.b.value().to_float_vector(), pair.b.value().to_float_vector()) << name;
    EXPECT_EQ(b.m.value().to_float_vector(), pair.m.value().to_float_vector()) << name;
  }
}

void expect_load_error(const fs::path& dir, models::TransformerLM& model, const std::vector<std::string>& parts) {
  expect_error([&] { train::load_adapters(dir, model); }, parts);
}

TEST(Peft, BadFoldersAreRefusedNamingTheFileAndField) {
  TempDir tmp;
  auto m = testing::load_tiny_llama();
  auto& model = testing::transformer(m);
  const fs::path weights = tmp.path / "adapter_model.safetensors", config = tmp.path / "adapter_config.json";
  // An adapter made for a wider model: every tensor that does not fit is listed.
  std::vector<float> a(4 * 96, 0.5f), b(64 * 4, 0.25f), mag(64, 1.0f);
  io::SafetensorsWriter w;
  w.add("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", Dtype::f32, {4, 96}, a.data(), a.size() * 4);
  w.add("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", Dtype::f32, {64, 4}, b.data(), b.size() * 4);
  w.add("base_model.model.model.layers.9.self_attn.q_proj.lora_B.weight", Dtype::f32, {64, 4}, b.data(), b.size() * 4);
  w.add("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", Dtype::f32, {64}, mag.data(), 256);
  w.write(weights);
  std::ofstream(config) << R"({"peft_type": "LORA", "r": 4, "lora_alpha": 16, "use_dora": true})";
  expect_load_error(tmp.path, model,
               {weights.string(), "q_proj.lora_a': shape [96, 4] does not fit the layer (in 64, out 64, rank 4)",
                "no Linear layer 'model.layers.9.self_attn.q_proj'"});
  std::ofstream(config) << R"({"peft_type": "LORA", "r": 8, "lora_alpha": 16, "use_dora": false})";
  expect_load_error(tmp.path, model, {"rank 8", "DoRA magnitude in lora adapters"});
  std::ofstream(config) << R"({"peft_type": "IA3", "r": 4})";
  expect_load_error(tmp.path, model, {config.string(), "peft_type 'IA3'"});
  std::ofstream(config) << R"({"peft_type": "LORA", "r": 4, "fan_in_fan_out": true})";
  expect_load_error(tmp.path, model, {config.string(), "fan_in_fan_out"});
  std::ofstream(config) << R"({"peft_type": "LORA", "r": 4, "lora_bias": true})";
  expect_load_error(tmp.path, model, {config.string(), "lora_bias true is not supported"});
  std::ofstream(config) << R"({"peft_type": "LORA", "r": 4, "rank_pattern": {"q_proj": 8}})";
  expect_load_error(tmp.path, model, {config.string(), "rank_pattern"});
  std::ofstream(config) << R"({"peft_type": "LORA", "r": "four"})";
  expect_load_error(tmp.path, model, {config.string(), "r must be a positive integer"});
  std::ofstream(config) << "{\"peft_type\": ";
  expect_load_error(tmp.path, model, {config.string(), "not valid JSON"});
  // A truncated weights file.
  std::ofstream(config) << R"({"peft_type": "LORA", "r": 4, "lora_alpha": 16})";
  fs::resize_file(weights, 100);
  expect_load_error(tmp.path, model, {weights.string()});
}

TEST(FullFineTune, AttachWritesTheTrainedWeightsAndFilesRoundTrip) {
  TempDir tmp;
  auto m = testing::load_tiny_llama();
  auto& model = testing::transformer(m);
  train::LoraAdapters a = train::make_lora(model, testing::tuning(train::FineTuneType::full, 1), 0);
  ASSERT_EQ(a.weights.size(), 9u);
  ops::RandomGenerator rng(2);
  for (auto& [name, w] : a.weights) w.set_value(ops::add(w.value(), rng.uniform(w.shape(), -0.05f, 0.05f)));
  train::save_adapters(tmp.path, a, {});
  train::LoraAdapters back = train::load_adapters(tmp.path, model);
  ASSERT_EQ(back.config.type, train::FineTuneType::full);
  for (const auto& [name, w] : a.weights) {
    EXPECT_EQ(back.weights.at(name).value().to_float_vector(), w.value().to_float_vector()) << name;
  }
  train::DifferentiableTransformer dt(model);
  Tensor ids = testing::fixture_tensor("input_ids");
  const auto trained = dt.forward(ids, &back, nullptr).value().to_float_vector();
  back.attach(model);
  EXPECT_LT(max_rel_diff(model.forward(ids, nullptr, {}).to_float_vector(), trained), 1e-5);
  EXPECT_GT(max_rel_diff(trained, testing::fixture_tensor("logits").to_float_vector()), 1e-3);
  // A weight of the wrong shape names itself.
  std::vector<float> bad(10, 1.0f);
  io::SafetensorsWriter w;
  w.add("model.layers.1.mlp.up_proj.weight", Dtype::f32, {2, 5}, bad.data(), 40);
  w.add("model.layers.1.mlp.nonexistent", Dtype::f32, {10}, bad.data(), 40);
  w.write(tmp.path / "adapters.safetensors");
  expect_load_error(tmp.path, model, {"'model.layers.1.mlp.up_proj.weight': f32 [2, 5], the model's is a float [128, 64]",
                                 "'model.layers.1.mlp.nonexistent': the model has no (dense) parameter"});
}

}  // namespace
}  // namespace lmx
