// Every architecture against Hugging Face transformers: tiny random-weight models made
// by tools/fixtures/make_llm_fixtures.py, with transformers' fp32 logits and hidden
// states stored beside them (tests/data/models/<name>/reference.safetensors).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/io/safetensors.h"
#include "lmx/models/load.h"
#include "lmx/models/quantize.h"
#include "lmx/models/registry.h"
#include "lmx/models/save.h"
#include "lmx/nn/linear.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;

fs::path fixture(const std::string& name) { return fs::path(LMX_SOURCE_DIR) / "tests/data/models" / name; }

Tensor read_tensor(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorInfo& info = f.at(name);
  return Tensor::wrap(const_cast<std::byte*>(info.data), info.shape, info.dtype, f.owner()).clone();
}

// max |a - b| / max(1, max |b|)
double relative_error(const Tensor& got, const Tensor& want) {
  auto g = got.to_float_vector(), w = want.to_float_vector();
  EXPECT_EQ(g.size(), w.size());
  double scale = 1.0, err = 0.0;
  for (float v : w) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  for (size_t i = 0; i < std::min(g.size(), w.size()); ++i) {
    err = std::max(err, static_cast<double>(std::fabs(g[i] - w[i])));
  }
  return err / scale;
}

struct Reference {
  io::SafetensorsFile file;
  Tensor ids, logits;
};

Reference reference(const std::string& name) {
  Reference r{io::SafetensorsFile::open(fixture(name) / "reference.safetensors"), {}, {}};
  r.ids = read_tensor(r.file, "input_ids");
  r.logits = read_tensor(r.file, "logits");
  return r;
}

void expect_parity(models::LanguageModel& model, const Reference& ref, double tol, bool check_hidden) {
  std::vector<Tensor> hidden;
  models::ForwardOptions opt;
  opt.hidden_states = &hidden;
  Tensor logits = model.forward(ref.ids, nullptr, opt);
  ASSERT_EQ(logits.shape(), ref.logits.shape());
  if (check_hidden) {
    for (size_t i = 0; i < hidden.size(); ++i) {
      std::string key = "hidden." + std::to_string(i);
      if (!ref.file.contains(key)) break;
      double e = relative_error(hidden[i], read_tensor(ref.file, key));
      ASSERT_LE(e, tol) << "hidden state " << i << " (0 = embeddings) diverges first";
    }
  }
  EXPECT_LE(relative_error(logits, ref.logits), tol);
}

// Quantized models run int16 activations by default (prefill and decode: x rounded per group
// to int16, each element off by at most amax / 65534), f32 activations on request (exact).
// Both against the reference: f32 at 1e-4, int16 at 1e-3.
void expect_quantized_parity(models::LanguageModel& model, const Reference& ref) {
  const ops::QuantActivations saved = ops::quant_activations();
  ops::set_quant_activations(ops::QuantActivations::f32);
  expect_parity(model, ref, 1e-4, false);
  ops::set_quant_activations(ops::QuantActivations::int16);
  expect_parity(model, ref, 1e-3, false);
  ops::set_quant_activations(saved);
}

class LlmParity : public ::testing::TestWithParam<std::string> {};

TEST_P(LlmParity, Fp32LogitsMatchTransformers) {
  auto loaded = models::load_model(fixture(GetParam()));
  expect_parity(*loaded.model, reference(GetParam()), 1e-4, true);
}

TEST_P(LlmParity, Bf16WeightsStayClose) {
  auto loaded = models::load_model(fixture(GetParam()));
  for (auto& p : loaded.model->parameters()) {
    if (p.tensor->defined() && is_floating(p.tensor->dtype())) *p.tensor = p.tensor->to(Dtype::bf16);
  }
  expect_parity(*loaded.model, reference(GetParam()), 3e-2, false);
}

INSTANTIATE_TEST_SUITE_P(
    Architectures, LlmParity,
    ::testing::Values("llama", "llama_linear_rope", "llama_dynamic_rope", "llama_tied", "mistral", "qwen2",
                      "qwen3", "qwen3_moe", "mixtral", "gemma", "gemma2", "gemma3_text", "phi3",
                      "phi3_short", "smollm3", "granite", "starcoder2", "olmo2"));

// Issue 19: the dense attention families.
INSTANTIATE_TEST_SUITE_P(DenseArchitectures, LlmParity,
                         ::testing::Values("phi", "stablelm", "gpt2", "gpt_neox", "gpt_bigcode", "cohere", "cohere2",
                                           "helium", "glm4", "olmo3", "exaone4", "ernie4_5", "apertus",
                                           "hunyuan_v1_dense", "bitnet", "ministral", "nanochat"));

// GPT-2 checkpoints come as transformers saves them (transformer.*, Conv1D weights
// [in, out]), as the hub's original (unprefixed, Conv1D) and as mlx-lm saves them
// (model.*, already [out, in]): all three must give transformers' logits.
TEST(ModelLoading, Gpt2CheckpointLayoutsAllLoad) {
  auto folder = io::ModelFolder::open(fixture("gpt2"));
  const Reference ref = reference("gpt2");
  const std::string prefix = "transformer.";
  for (const bool mlx : {false, true}) {
    auto model = models::create_model(models::ConfigReader(folder.text_config(), "config.json"));
    models::WeightDict weights;
    int transposed = 0;
    for (auto& [key, t] : models::read_weights(folder)) {
      if (key.rfind("lm_head.", 0) == 0) {  // the fixture's head is untied; no prefix in any layout
        weights[key] = t;
        continue;
      }
      ASSERT_EQ(key.rfind(prefix, 0), 0u) << key;
      const std::string name = key.substr(prefix.size());
      const bool conv1d = t.ndim() == 2 && (name.find(".attn.") != std::string::npos ||
                                            name.find(".mlp.") != std::string::npos);
      if (mlx) {
        transposed += conv1d ? 1 : 0;
        weights["model." + name] = conv1d ? t.transpose(0, 1).contiguous() : t;
      } else {
        weights[name] = t;
      }
    }
    if (mlx) {
      EXPECT_EQ(transposed, 4 * 2);  // c_attn, attn c_proj, c_fc, mlp c_proj in 2 layers
    }
    models::load_weights(*model, weights, folder.raw_config(), "gpt2");
    expect_parity(*model, ref, 1e-4, false);
  }
}

class QuantizedParity : public ::testing::TestWithParam<std::string> {};

// lmx's own quantizer on the f32 folder vs transformers run on MLX-dequantized weights.
TEST_P(QuantizedParity, MatchesReferenceOnDequantizedWeights) {
  nlohmann::json q;
  std::ifstream(fixture(GetParam()) / "quantization.json") >> q;
  auto loaded = models::load_model(fixture(q["source"].get<std::string>()));
  models::QuantizeOptions o;
  o.bits = q["bits"].get<int>();
  o.group_size = q["group_size"].get<int>();
  auto paths = models::quantize_model(*loaded.model, o);
  EXPECT_GE(paths.size(), 8u);
  expect_quantized_parity(*loaded.model, reference(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(Variants, QuantizedParity,
                         ::testing::Values("llama_q4_g32", "llama_q8_g64", "qwen3_q4_g64"));

TEST(ModelLoading, StrictErrorListsEveryProblem) {
  auto folder = io::ModelFolder::open(fixture("llama"));
  auto model = models::create_model(models::ConfigReader(folder.text_config(), "config.json"));
  auto weights = models::read_weights(folder);
  weights.erase("model.norm.weight");
  weights["model.extra.weight"] = Tensor::zeros({3});
  weights["lm_head.weight"] = Tensor::zeros({10, 64});
  try {
    models::load_weights(*model, weights, folder.raw_config(), "llama");
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("missing 'model.norm.weight'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("unused 'model.extra.weight'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'lm_head.weight' is f32 [10, 64], expected float [256, 64]"), std::string::npos) << msg;
  }
}

TEST(ModelLoading, UnknownArchitectureIsUnsupported) {
  nlohmann::json cfg = {{"model_type", "not_a_model"}};
  EXPECT_THROW(models::create_model(models::ConfigReader(cfg, "config.json")), Unsupported);
  nlohmann::json bad = {{"model_type", "llama"}, {"vocab_size", "many"}};
  EXPECT_THROW(models::create_model(models::ConfigReader(bad, "config.json")), FormatError);
}

// Issue 22: values that make no sense are refused naming the field, not run silently.
TEST(ModelLoading, NonsenseConfigValuesNameTheField) {
  auto folder = io::ModelFolder::open(fixture("llama"));
  const nlohmann::json good = folder.text_config();
  EXPECT_NO_THROW(models::create_model(models::ConfigReader(good, "config.json")));
  struct Case {
    nlohmann::json patch;
    std::string field;
  };
  const std::vector<Case> cases = {
      {{{"rope_theta", 0}}, "rope_theta"},
      {{{"rope_theta", -10000.0}}, "rope_theta"},
      {{{"rms_norm_eps", -1e-6}}, "rms_norm_eps"},
      {{{"partial_rotary_factor", 1.5}}, "partial_rotary_factor"},
      {{{"partial_rotary_factor", 0}}, "partial_rotary_factor"},
      {{{"rope_parameters", {{"factor", -2.0}}}}, "factor"},
      {{{"rope_parameters", {{"rope_theta", 0.0}}}}, "rope_theta"},
      {{{"num_key_value_heads", 0}}, "num_key_value_heads"},
      {{{"num_key_value_heads", 3}}, "num_key_value_heads"},
      {{{"intermediate_size", -1}}, "intermediate_size"},
      {{{"vocab_size", 0}}, "vocab_size"},
      {{{"head_dim", 0}}, "head_dim"},
      {{{"max_position_embeddings", -1}}, "max_position_embeddings"},
      {{{"max_position_embeddings", 0}}, "max_position_embeddings"},
  };
  for (const auto& c : cases) {
    nlohmann::json cfg = good;
    cfg.merge_patch(c.patch);
    try {
      models::create_model(models::ConfigReader(cfg, "bad/config.json"));
      ADD_FAILURE() << "accepted " << c.patch.dump();
    } catch (const FormatError& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find("bad/config.json"), std::string::npos) << msg;
      EXPECT_NE(msg.find(c.field), std::string::npos) << msg;
    }
  }
}

}  // namespace
}  // namespace lmx

namespace lmx {
namespace {

models::QuantizeOptions quantize_q4_g32(models::LanguageModel& model) {
  models::QuantizeOptions q;
  q.bits = 4;
  q.group_size = 32;
  models::quantize_model(model, q);
  return q;
}

// lmx convert's library path: quantize, save in the mlx-community layout, load the
// saved folder back (MLX quantization config + .scales/.biases), same logits.
TEST(Convert, QuantizedFolderRoundTripKeepsParity) {
  auto loaded = models::load_model(fixture("llama"));
  const models::QuantizeOptions q = quantize_q4_g32(*loaded.model);
  models::SaveOptions opts;
  opts.quantization = q;
  const fs::path out = fs::temp_directory_path() / ("lmx-convert-" + std::to_string(::getpid()));
  models::save_model(*loaded.model, fixture("llama"), out, opts);
  auto reloaded = models::load_model(out);
  fs::remove_all(out);
  expect_quantized_parity(*reloaded.model, reference("llama_q4_g32"));
}

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A prepared model holds only the packed copies of its quantized weights; saving unpacks
// them exactly: a quantized folder loaded (packed) and saved again is byte-identical, the
// stacked MoE experts included, and so is one saved from an unprepared load.
TEST(Convert, SavingPackedWeightsReproducesTheFolderExactly) {
  for (const std::string name : {"llama", "mixtral"}) {
    auto loaded = models::load_model(fixture(name));
    const models::QuantizeOptions q = quantize_q4_g32(*loaded.model);
    models::SaveOptions opts;
    opts.quantization = q;
    const fs::path base = fs::temp_directory_path() / ("lmx-resave-" + std::to_string(::getpid()));
    models::save_model(*loaded.model, fixture(name), base / "a", opts);
    auto packed = models::load_model(base / "a");
    models::save_model(*packed.model, base / "a", base / "b", opts);
    auto unprepared = models::load_model(base / "a", {.prepare = false});
    models::save_model(*unprepared.model, base / "a", base / "c", opts);
    const std::string a = file_bytes(base / "a" / "model.safetensors");
    const bool same_b = a == file_bytes(base / "b" / "model.safetensors");
    const bool same_c = a == file_bytes(base / "c" / "model.safetensors");
    fs::remove_all(base);
    EXPECT_GT(a.size(), 1000u) << name;
    EXPECT_TRUE(same_b) << name;
    EXPECT_TRUE(same_c) << name;
  }
}

// Prepared quantized layers hold only packed copies: weight_bytes counts those, outside
// the allocator's statistics like the mapped dense tensors.
TEST(ModelLoading, WeightBytesCountPackedCopies) {
  auto loaded = models::load_model(fixture("mixtral"));
  const models::WeightBytes dense = models::weight_bytes(*loaded.model);
  size_t params = 0;
  for (auto& p : loaded.model->parameters()) params += p.tensor->defined() ? p.tensor->nbytes() : 0;
  EXPECT_EQ(dense.total, params);
  quantize_q4_g32(*loaded.model);
  const models::WeightBytes packed = models::weight_bytes(*loaded.model);
  EXPECT_GT(packed.total, dense.total / 8);  // 4-bit of f32, plus scales, biases, norms
  EXPECT_LT(packed.total, dense.total / 3);
  EXPECT_GT(packed.outside_allocator, packed.total / 2);
}

TEST(Convert, Bf16FolderRoundTrip) {
  auto loaded = models::load_model(fixture("qwen2"));
  models::SaveOptions opts;
  opts.dtype = Dtype::bf16;
  const fs::path out = fs::temp_directory_path() / ("lmx-convert-bf16-" + std::to_string(::getpid()));
  models::save_model(*loaded.model, fixture("qwen2"), out, opts);
  auto reloaded = models::load_model(out);
  fs::remove_all(out);
  for (auto& p : reloaded.model->parameters()) EXPECT_EQ(p.tensor->dtype(), Dtype::bf16) << p.name;
  expect_parity(*reloaded.model, reference("qwen2"), 3e-2, false);
}

}  // namespace
}  // namespace lmx
