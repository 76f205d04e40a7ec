// MLX's floating-point quantization modes and mixed-bits recipes on a whole model
// (stories260K): each mode stays close to the f32 logits, saving and loading gives back
// the same tensors and logits, config.json's per-layer entries (mode included) are read,
// and bad quantization entries are refused with the field named.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../generate/shared_data.h"
#include "lmx/base/error.h"
#include "lmx/io/llama2c_import.h"
#include "lmx/models/load.h"
#include "lmx/models/quantize.h"
#include "lmx/models/save.h"
#include "lmx/nn/linear.h"

namespace lmx::models {
namespace {

namespace fs = std::filesystem;
using lmx::testing::shared_data;

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("lmx-qmodes-" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

class QuantModes : public ::testing::Test {
 protected:
  void SetUp() override {
    LMX_REQUIRE_SHARED(shared_data("models/stories260K/stories260K.bin"));
    src_ = tmp_.path / "f32";
    const fs::path s = shared_data("models/stories260K");
    io::import_llama2c(s / "stories260K.bin", s / "tok512.bin", src_);
  }
  std::vector<float> logits(LanguageModel& m) {
    const std::vector<int32_t> ids = {1, 403, 407, 261, 378, 300, 42, 17};
    Tensor out = m.forward(Tensor::from_vector(ids, {1, static_cast<int64_t>(ids.size())}), nullptr).contiguous();
    return std::vector<float>(out.data<float>(), out.data<float>() + out.numel());
  }
  // max |a - b| / max |b|
  static double rel(const std::vector<float>& a, const std::vector<float>& b) {
    double err = 0, scale = 0;
    for (size_t i = 0; i < b.size(); ++i) {
      err = std::max(err, static_cast<double>(std::fabs(a[i] - b[i])));
      scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
    }
    return err / scale;
  }
  // Every quantized Linear's MLX words and scale codes, concatenated.
  static std::vector<uint8_t> packed_bytes(LanguageModel& m) {
    std::vector<uint8_t> out;
    m.for_each_module([&](const std::string&, nn::Module& mod) {
      auto* l = dynamic_cast<nn::Linear*>(&mod);
      if (!l || !l->weight().quantized()) return;
      const QuantizedWeight q = l->weight().quant().mlx_layout();
      for (const Tensor* t : {&q.w, &q.scales}) {
        const Tensor c = t->contiguous();
        const auto* b = static_cast<const uint8_t*>(c.raw_data());
        out.insert(out.end(), b, b + c.nbytes());
      }
    });
    return out;
  }
  TempDir tmp_;
  fs::path src_;
};

TEST_F(QuantModes, EachModeRunsCloseToF32AndRoundTripsThroughSaveAndLoad) {
  auto f32 = load_model(src_);
  const std::vector<float> want = logits(*f32.model);
  struct Case {
    QuantMode mode;
    double tolerance;  // of max |logit error| / max |logit|
  };
  // e4m3 keeps 3 mantissa bits, e2m1 one: per-weight errors up to 1/16 and 1/4 of the value
  // (stories260K is small: its logits move more than a large model's).
  for (const Case& c : {Case{QuantMode::mxfp8, 0.25}, Case{QuantMode::mxfp4, 0.6}, Case{QuantMode::nvfp4, 0.6}}) {
    auto loaded = load_model(src_, {.prepare = false});
    QuantizeOptions q;
    q.mode = c.mode;
    std::tie(q.group_size, q.bits) = default_group_size_and_bits(c.mode);
    const auto paths = quantize_model(*loaded.model, q);
    EXPECT_EQ(paths.size(), 31u);  // every matrix but the 5 down_proj (172 inputs)
    const std::vector<float> got = logits(*loaded.model);
    const double err = rel(got, want);
    std::printf("%s: max logit error / max logit = %.4f\n", quant_mode_name(c.mode), err);
    EXPECT_LT(err, c.tolerance) << quant_mode_name(c.mode);
    EXPECT_GT(err, 1e-4) << quant_mode_name(c.mode);  // it really is quantized

    const fs::path out = tmp_.path / quant_mode_name(c.mode);
    SaveOptions so;
    so.quantization = q;
    save_model(*loaded.model, src_, out, so);
    std::ifstream in(out / "config.json");
    const auto config = nlohmann::json::parse(in);
    EXPECT_EQ(config["quantization"]["mode"], quant_mode_name(c.mode));
    auto back = load_model(out);
    EXPECT_EQ(logits(*back.model), got) << quant_mode_name(c.mode);
    // The packed words and scale codes come back bit for bit.
    EXPECT_EQ(packed_bytes(*back.model), packed_bytes(*loaded.model)) << quant_mode_name(c.mode);
  }
}

TEST_F(QuantModes, PerLayerEntriesChooseBitsAndModeAsMlxLmWritesThem) {
  // mixed_3_6 with group 32: v_proj / down_proj of "more bits" layers and lm_head get 6.
  auto loaded = load_model(src_, {.prepare = false});
  QuantizeOptions q;
  q.group_size = 32;
  q.recipe = "mixed_3_6";
  std::map<std::string, LayerQuantization> per_layer;
  quantize_model(*loaded.model, q, nullptr, &per_layer);
  // 5 layers: n/8 = 0, 7n/8 = 4: layers 2 ((2 - 0) % 3 == 2) and 4 get more bits.
  EXPECT_EQ(per_layer.at("model.layers.2.self_attn.v_proj").bits, 6);
  EXPECT_EQ(per_layer.at("model.layers.4.self_attn.v_proj").bits, 6);
  EXPECT_EQ(per_layer.at("model.layers.1.self_attn.v_proj").bits, 3);
  EXPECT_EQ(per_layer.at("model.layers.2.self_attn.q_proj").bits, 3);
  EXPECT_EQ(per_layer.at("model.embed_tokens").bits, 3);
  const std::vector<float> got = logits(*loaded.model);
  SaveOptions so;
  so.quantization = q;
  so.quantization_per_layer = per_layer;
  const fs::path out = tmp_.path / "mixed";
  save_model(*loaded.model, src_, out, so);
  auto back = load_model(out);
  EXPECT_EQ(logits(*back.model), got);

  // A per-layer entry may switch the mode (mlx-lm writes {"group_size", "bits", "mode"}).
  auto mixed = load_model(src_, {.prepare = false});
  QuantizeOptions fp4;
  fp4.mode = QuantMode::mxfp4;
  fp4.group_size = 32;
  quantize_model(*mixed.model, fp4);
  const fs::path out2 = tmp_.path / "mixed_modes";
  SaveOptions so2;
  so2.quantization = fp4;
  so2.quantization_per_layer["model.layers.0.self_attn.q_proj"] = {8, 32, QuantMode::mxfp8};
  // The layer itself must hold what its entry says: quantize that one as mxfp8 first.
  auto fresh = load_model(src_, {.prepare = false});
  QuantizeOptions fp8 = fp4;
  fp8.mode = QuantMode::mxfp8;
  fp8.bits = 8;
  quantize_model(*fresh.model, fp8);
  save_model(*fresh.model, src_, out2, so2);  // every layer mxfp8 on disk, config says mxfp4 but one
  EXPECT_THROW(
      {
        try {
          load_model(out2);
        } catch (const FormatError& e) {
          EXPECT_NE(std::string(e.what()).find("model.layers.0.self_attn.k_proj"), std::string::npos) << e.what();
          EXPECT_EQ(std::string(e.what()).find("'model.layers.0.self_attn.q_proj"), std::string::npos) << e.what();
          throw;
        }
      },
      FormatError);
}

TEST_F(QuantModes, BadModeIsRefusedNamingTheField) {
  nlohmann::json config;
  {
    std::ifstream in(src_ / "config.json");
    config = nlohmann::json::parse(in);
  }
  config["quantization"] = {{"group_size", 32}, {"bits", 4}, {"mode", "fp3"}};
  std::ofstream(src_ / "config.json") << config.dump();
  try {
    auto m = load_model(src_);
    FAIL() << "loaded a model with mode fp3";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown quantization mode 'fp3'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lmx::models
