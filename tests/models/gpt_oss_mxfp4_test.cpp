// gpt-oss as OpenAI ships it (openai/gpt-oss-20b, -120b): MXFP4 experts as
// "experts.{gate_up,down}_proj_blocks" / "_scales" with quantization_config quant_method
// "mxfp4" (lmx/models/expert_weights.cpp). The same codes in MLX's layout load to the same
// model bit for bit; tests/data/models/gpt_oss_mxfp4 (transformers' own reading of such a
// folder: tools/fixtures/make_gpt_oss_mxfp4_fixture.py) gives the logits.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/ops/shape.h"
#include "lmx/core/quantized_weight.h"
#include "lmx/io/safetensors.h"
#include "lmx/models/load.h"
#include "lmx/models/registry.h"
#include "parity_util.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;
using testing::read_tensor;
using testing::relative_error;

using testing::model_fixture;

// The u32 words of t as bytes (little-endian), shaped `shape`.
Tensor bytes_of(const Tensor& words, const Shape& shape) {
  const Tensor c = words.contiguous();
  Tensor out = Tensor::empty(shape, Dtype::u8);
  EXPECT_EQ(out.nbytes(), c.nbytes());
  std::memcpy(out.raw_data(), c.raw_data(), c.nbytes());
  return out;
}

struct Layouts {
  models::WeightDict openai, mlx;
};

// The float gpt_oss fixture's experts quantized to mxfp4 by lmx, in both layouts.
Layouts both_layouts() {
  auto folder = io::ModelFolder::open(model_fixture("gpt_oss"));
  Layouts l;
  for (auto& [key, t] : models::read_weights(folder)) {
    const bool gate_up = key.ends_with("experts.gate_up_proj"), down = key.ends_with("experts.down_proj");
    if (!gate_up && !down) {
      l.openai[key] = l.mlx[key] = t;
      continue;
    }
    const Tensor w = t.transpose(1, 2).contiguous();  // stored [E, in, out]
    const int64_t E = w.dim(0), out = w.dim(1), in = w.dim(2);
    std::vector<Tensor> words, scales;
    for (int64_t e = 0; e < E; ++e) {
      QuantizedWeight q = QuantizedWeight::quantize(w.select(0, e).contiguous(), 4, 32, Dtype::f32, QuantMode::mxfp4);
      words.push_back(q.w.unsqueeze(0));
      scales.push_back(q.scales.unsqueeze(0));
    }
    const Tensor qw = ops::concat(words, 0), qs = ops::concat(scales, 0);
    l.openai[key + "_blocks"] = bytes_of(qw, {E, out, in / 32, 16});
    l.openai[key + "_scales"] = qs;
    const std::string base = key.substr(0, key.size() - std::string(gate_up ? "gate_up_proj" : "down_proj").size());
    if (down) {
      l.mlx[base + "down_proj.weight"] = qw;
      l.mlx[base + "down_proj.scales"] = qs;
    } else {  // rows alternate gate, up
      l.mlx[base + "gate_proj.weight"] = qw.slice(1, 0, out, 2).contiguous();
      l.mlx[base + "gate_proj.scales"] = qs.slice(1, 0, out, 2).contiguous();
      l.mlx[base + "up_proj.weight"] = qw.slice(1, 1, out, 2).contiguous();
      l.mlx[base + "up_proj.scales"] = qs.slice(1, 1, out, 2).contiguous();
    }
  }
  // The biases: gate_up's alternate too.
  for (auto it = l.mlx.begin(); it != l.mlx.end();) {
    if (!it->first.ends_with("experts.gate_up_proj_bias")) {
      ++it;
      continue;
    }
    const std::string base = it->first.substr(0, it->first.size() - std::string("gate_up_proj_bias").size());
    const Tensor b = it->second;
    l.mlx[base + "gate_proj.bias"] = b.slice(1, 0, b.dim(1), 2).contiguous();
    l.mlx[base + "up_proj.bias"] = b.slice(1, 1, b.dim(1), 2).contiguous();
    it = l.mlx.erase(it);
  }
  for (auto it = l.mlx.begin(); it != l.mlx.end();) {
    if (it->first.ends_with("experts.down_proj_bias")) {
      const std::string base = it->first.substr(0, it->first.size() - std::string("down_proj_bias").size());
      const Tensor b = it->second;
      it = l.mlx.erase(it);
      l.mlx[base + "down_proj.bias"] = b;
    } else {
      ++it;
    }
  }
  return l;
}

nlohmann::json config_with(const nlohmann::json& quant_key_and_value) {
  nlohmann::json c = io::ModelFolder::open(model_fixture("gpt_oss")).raw_config();
  c.merge_patch(quant_key_and_value);
  return c;
}

const nlohmann::json kOpenAi = {
    {"quantization_config",
     {{"quant_method", "mxfp4"},
      {"modules_to_not_convert", {"model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"}}}}};
const nlohmann::json kMlx = {{"quantization", {{"group_size", 32}, {"bits", 4}, {"mode", "mxfp4"}}}};

std::unique_ptr<models::LanguageModel> load(const models::WeightDict& w, const nlohmann::json& config) {
  auto model = models::create_model(models::ConfigReader(config, "config.json"));
  models::load_weights(*model, w, config, "gpt_oss");
  model->prepare_for_inference();
  return model;
}

TEST(GptOssMxfp4, OpenAiLayoutEqualsMlxLayoutBitForBit) {
  const Layouts l = both_layouts();
  auto openai = load(l.openai, config_with(kOpenAi));
  auto mlx = load(l.mlx, config_with(kMlx));
  const auto ref = io::SafetensorsFile::open(model_fixture("gpt_oss") / "reference.safetensors");
  const Tensor ids = read_tensor(ref, "input_ids");
  const Tensor a = openai->forward(ids, nullptr, {}), b = mlx->forward(ids, nullptr, {});
  EXPECT_EQ(a.to_float_vector(), b.to_float_vector());
  // And near the float model (mxfp4 is coarse: a few percent).
  EXPECT_LE(relative_error(a, read_tensor(ref, "logits")), 0.1);
}

TEST(GptOssMxfp4, BadBlocksAreNamed) {
  Layouts l = both_layouts();
  const std::string key = "model.layers.1.mlp.experts.down_proj_blocks";
  l.openai[key] = Tensor::zeros({4, 64, 2, 8}, Dtype::u8);
  try {
    load(l.openai, config_with(kOpenAi));
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("'" + key + "' is u8 [4, 64, 2, 8], expected u8 [4, 64, 2, 16]"),
              std::string::npos)
        << e.what();
  }
  l = both_layouts();
  l.openai.erase("model.layers.0.mlp.experts.gate_up_proj_scales");
  try {
    load(l.openai, config_with(kOpenAi));
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("missing 'model.layers.0.mlp.experts.gate_up_proj_scales'"),
              std::string::npos)
        << e.what();
  }
}

// transformers' reading of an OpenAI-layout folder (Mxfp4Config(dequantize=True)): logits
// and every hidden state within 2e-3 (measured: logits 9.9e-4, hidden states 1.3e-3, f32
// and int16 activations alike). Not the 1e-4 of the float gpt_oss fixture, and the cause is
// not pinned down: the weights are not it (the generator asserts that transformers' experts
// equal the MXFP4 definition of the stored codes, and OpenAiLayoutEqualsMlxLayoutBitForBit
// ties lmx's reading to its MLX mxfp4 path, itself checked against the definition); the
// likely one is transformers running the dequantized experts in bf16 (the default dtype of
// its MXFP4 dequantization), which would give errors of this size.
TEST(GptOssMxfp4, LogitsMatchTransformers) {
  auto loaded = models::load_model(model_fixture("gpt_oss_mxfp4"));
  const auto ref = io::SafetensorsFile::open(model_fixture("gpt_oss_mxfp4") / "reference.safetensors");
  const ops::QuantActivations saved = ops::quant_activations();
  const double tol = 2e-3;
  for (const auto mode : {ops::QuantActivations::f32, ops::QuantActivations::int16}) {
    ops::set_quant_activations(mode);
    std::vector<Tensor> hidden;
    models::ForwardOptions opt;
    opt.hidden_states = &hidden;
    const Tensor logits = loaded.model->forward(read_tensor(ref, "input_ids"), nullptr, opt);
    for (size_t i = 0; i < hidden.size(); ++i) {
      const std::string key = "hidden." + std::to_string(i);
      if (!ref.contains(key)) break;
      ASSERT_LE(relative_error(hidden[i], read_tensor(ref, key)), tol) << key;
    }
    const double err = relative_error(logits, read_tensor(ref, "logits"));
    std::printf("gpt_oss_mxfp4 %s: logits relative error %.3g\n", mode == ops::QuantActivations::f32 ? "f32" : "int16",
                err);
    EXPECT_LE(err, tol);
  }
  ops::set_quant_activations(saved);
}

}  // namespace
}  // namespace lmx
