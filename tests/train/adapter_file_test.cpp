// mlx-lm adapter files: written, read back bit for bit, and refused with every problem
// listed when they do not fit the model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "lmx/io/safetensors.h"
#include "lmx/io/safetensors_writer.h"
#include "lmx/core/ops/random.h"
#include "lmx/train/adapter_file.h"
#include "tests/train/train_fixtures.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

TEST(AdapterFile, RoundTripInMlxLayout) {
  TempDir tmp;
  auto m = testing::load_tiny_llama();
  auto& model = testing::transformer(m);
  train::LoraConfig c;
  c.rank = 4;
  c.scale = 10.0f;
  c.num_layers = 1;
  c.keys = {"self_attn.q_proj", "self_attn.v_proj"};
  train::LoraAdapters a = train::make_lora(model, c, 5);
  ops::RandomGenerator rng(9);
  for (auto& [name, pair] : a.layers) pair.b.set_value(rng.normal(pair.b.shape()));
  train::save_adapters(tmp.path, a, {{"iters", 3}});

  auto f = io::SafetensorsFile::open(tmp.path / "adapters.safetensors");
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f.at("model.layers.1.self_attn.q_proj.lora_a").shape, (std::vector<int64_t>{64, 4}));
  EXPECT_EQ(f.at("model.layers.1.self_attn.v_proj.lora_b").shape, (std::vector<int64_t>{4, 32}));
  nlohmann::json cfg;
  std::ifstream(tmp.path / "adapter_config.json") >> cfg;
  EXPECT_EQ(cfg["fine_tune_type"], "lora");
  EXPECT_EQ(cfg["num_layers"], 1);
  EXPECT_EQ(cfg["lora_parameters"]["rank"], 4);
  EXPECT_EQ(cfg["lora_parameters"]["scale"], 10.0);
  EXPECT_EQ(cfg["iters"], 3);

  train::LoraAdapters back = train::load_adapters(tmp.path, model);
  EXPECT_EQ(back.config.rank, 4);
  EXPECT_EQ(back.config.scale, 10.0f);
  ASSERT_EQ(back.layers.size(), a.layers.size());
  for (const auto& [name, pair] : a.layers) {
    EXPECT_EQ(back.layers.at(name).a.value().to_float_vector(), pair.a.value().to_float_vector()) << name;
    EXPECT_EQ(back.layers.at(name).b.value().to_float_vector(), pair.b.value().to_float_vector()) << name;
  }
  // Saving again replaces the pair (atomic rename; no temporaries left behind).
  train::save_adapters(tmp.path, back, {});
  int files = 0;
  for (const auto& e : fs::directory_iterator(tmp.path)) files += e.is_regular_file();
  EXPECT_EQ(files, 2);
}

TEST(AdapterFile, AdaptersForAnotherModelListEveryMismatch) {
  TempDir tmp;
  auto m = testing::load_tiny_llama();
  auto& model = testing::transformer(m);
  std::vector<float> a(100 * 4, 0.5f), b(4 * 64, 0.25f), c(64 * 8, 1.0f);
  io::SafetensorsWriter w;
  w.add("model.layers.0.self_attn.q_proj.lora_a", Dtype::f32, {100, 4}, a.data(), a.size() * 4);  // in is 64
  w.add("model.layers.0.self_attn.q_proj.lora_b", Dtype::f32, {4, 64}, b.data(), b.size() * 4);
  w.add("model.layers.7.self_attn.q_proj.lora_a", Dtype::f32, {64, 8}, c.data(), c.size() * 4);  // no layer 7
  w.add("model.layers.1.mlp.up_proj.lora_a", Dtype::f32, {64, 4}, c.data(), 64 * 4 * 4);         // no lora_b
  w.write(tmp.path / "adapters.safetensors");
  std::ofstream(tmp.path / "adapter_config.json") << R"({"fine_tune_type": "lora", "num_layers": 2,
      "lora_parameters": {"rank": 4, "scale": 20.0, "dropout": 0.0}})";
  testing::expect_error<FormatError>([&] { train::load_adapters(tmp.path, model); },
                                     {"q_proj.lora_a': shape [100, 4] does not fit the layer (in 64, out 64, rank 4)",
                                       "no Linear layer 'model.layers.7.self_attn.q_proj'",
                                      "'model.layers.1.mlp.up_proj.lora_b' is missing"});
  std::ofstream(tmp.path / "adapter_config.json") << R"({"fine_tune_type": "ia3"})";
  EXPECT_THROW(train::load_adapters(tmp.path, model), Unsupported);
  std::ofstream(tmp.path / "adapter_config.json") << "{not json";
  EXPECT_THROW(train::load_adapters(tmp.path, model), FormatError);
}

TEST(AdapterFile, DoraFilesAndCorruptOnesNameTheFileAndTensor) {
  TempDir tmp;
  auto m = testing::load_tiny_llama();
  auto& model = testing::transformer(m);
  train::LoraConfig c = testing::tuning(train::FineTuneType::dora, 1, 2);
  c.keys = {"mlp.down_proj"};
  train::LoraAdapters a = train::make_lora(model, c, 5);
  train::save_adapters(tmp.path, a, {});
  auto f = io::SafetensorsFile::open(tmp.path / "adapters.safetensors");
  EXPECT_EQ(f.at("model.layers.1.mlp.down_proj.m").shape, (std::vector<int64_t>{64}));
  train::LoraAdapters back = train::load_adapters(tmp.path, model);
  EXPECT_EQ(back.layers.at("model.layers.1.mlp.down_proj").m.value().to_float_vector(),
            a.layers.at("model.layers.1.mlp.down_proj").m.value().to_float_vector());
  // The config says LoRA of rank 4: the magnitude and both shapes are listed.
  std::ofstream(tmp.path / "adapter_config.json") << R"({"fine_tune_type": "lora", "lora_parameters": {"rank": 4}})";
  const std::string weights = (tmp.path / "adapters.safetensors").string();
  auto load = [&] { train::load_adapters(tmp.path, model); };
  testing::expect_error<FormatError>(load, {weights, "down_proj.m': a DoRA magnitude in lora adapters",
                               "down_proj.lora_a': shape [128, 2] does not fit the layer (in 128, out 64, rank 4)"});
  std::ofstream(tmp.path / "adapter_config.json") << R"({"fine_tune_type": "dora", "lora_parameters": {"rank": 0}})";
  EXPECT_THROW(train::load_adapters(tmp.path, model), FormatError);
  // A truncated weights file.
  std::ofstream(tmp.path / "adapter_config.json") << R"({"fine_tune_type": "dora", "lora_parameters": {"rank": 2}})";
  fs::resize_file(tmp.path / "adapters.safetensors", 50);
  testing::expect_error(load, {weights});
}

}  // namespace
}  // namespace lmx
