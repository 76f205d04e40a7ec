// The Qwen2-VL families on the GPU against the CPU and against transformers: the committed
// tiny fixtures (tests/data/vision/models/qwen2_vl: two images; qwen2_5_vl: one image over
// two attention windows; qwen3_vl: two images, learned positions, DeepStack; made by
// tools/fixtures/make_vlm_fixtures.py) loaded on both devices; the projected image features
// and the logits of the whole prompt, f32 and bf16 weights, and greedy decoding after the
// image prompt.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "lmx/base/error.h"
#include "lmx/generate/simple_kv_cache.h"
#include "lmx/io/safetensors.h"
#include "lmx/models/load.h"
#include "lmx/models/vlm/image_inputs.h"
#include "lmx/models/vlm/vision_language_model.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;
using models::vlm::ImageInputs;
using models::vlm::VisionLanguageModel;
using testing::relative_error;

// LMX_TEST_VISION_MODELS, else tests/data/vision/models under the working directory (a
// binary run from another checkout's root), else this source tree's.
fs::path fixture(const std::string& name) {
  if (const char* env = std::getenv("LMX_TEST_VISION_MODELS")) return fs::path(env) / name;
  const fs::path here = fs::path("tests/data/vision/models") / name;
  return fs::exists(here / "config.json") ? here : fs::path(LMX_SOURCE_DIR) / "tests/data/vision/models" / name;
}

Tensor read(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorInfo& info = f.at(name);
  return Tensor::wrap(const_cast<std::byte*>(info.data), info.shape, info.dtype, f.owner()).clone();
}

struct Loaded {
  models::LoadedModel loaded;
  VisionLanguageModel* vlm = nullptr;
};

// The fixture on `device`, its float weights in `dtype`.
Loaded load(const fs::path& dir, Device device, Dtype dtype) {
  Loaded l{models::load_model(dir), nullptr};
  for (auto& p : l.loaded.model->parameters()) {
    if (!p.tensor->defined()) continue;
    Tensor t = p.tensor->dtype() == Dtype::f32 ? p.tensor->to(dtype) : *p.tensor;
    *p.tensor = t.to(device);
  }
  l.loaded.model->prepare_for_inference();
  l.vlm = dynamic_cast<VisionLanguageModel*>(l.loaded.model.get());
  return l;
}

class CudaQwen2VL : public testing::CudaTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    testing::CudaTest::SetUp();
    if (IsSkipped()) return;
    dir_ = fixture(GetParam());
    if (!fs::exists(dir_ / "reference.safetensors")) GTEST_SKIP() << "no fixture at " << dir_;
    ref_.emplace(io::SafetensorsFile::open(dir_ / "reference.safetensors"));
    ids_ = read(*ref_, "input_ids");
    images_ = models::vlm::read_image_inputs(dir_ / "reference.safetensors");
  }
  // Features and logits of the whole prompt (one call, no cache), moved to the host.
  std::pair<Tensor, Tensor> run(VisionLanguageModel& vlm) const {
    Tensor features = vlm.image_features(images_);
    vlm.set_images(images_);
    Tensor logits = vlm.forward(ids_, nullptr, {});
    return {features.to(Device::cpu()), logits.to(Device::cpu())};
  }

  fs::path dir_;
  std::optional<io::SafetensorsFile> ref_;
  Tensor ids_;
  ImageInputs images_;
};

// f32 weights: the GPU's features and logits equal the CPU's and transformers' within 1e-4
// (max |diff| / max(1, max |want|)), and the GPU's outputs stay on the GPU.
TEST_P(CudaQwen2VL, F32FeaturesAndLogitsMatchCpuAndTransformers) {
  Loaded cpu = load(dir_, Device::cpu(), Dtype::f32), gpu = load(dir_, Device::cuda(), Dtype::f32);
  ASSERT_NE(gpu.vlm, nullptr);
  EXPECT_TRUE(gpu.vlm->image_features(images_).device().is_cuda());
  const auto [cf, cl] = run(*cpu.vlm);
  const auto [gf, gl] = run(*gpu.vlm);
  const double ef = relative_error(gf, cf), el = relative_error(gl, cl);
  const double rf = relative_error(gf, read(*ref_, "image_features")), rl = relative_error(gl, read(*ref_, "logits"));
  std::printf("%s f32 GPU vs CPU: features %.3g logits %.3g; vs transformers: features %.3g logits %.3g\n",
              GetParam().c_str(), ef, el, rf, rl);
  EXPECT_LE(ef, 1e-4);
  EXPECT_LE(el, 1e-4);
  EXPECT_LE(rf, 1e-4);
  EXPECT_LE(rl, 1e-4);
}

// bf16 weights: the GPU rounds GEMM inputs and attention's K / V (and q) to bf16 where the
// CPU keeps f32 activations, so the bound is the bf16 parity tests' 3e-2 for logits, 5e-2
// for the features (the tower's output before the text model's final norm).
TEST_P(CudaQwen2VL, Bf16FeaturesAndLogitsStayWithinBf16RoundingOfTheCpu) {
  Loaded cpu = load(dir_, Device::cpu(), Dtype::bf16), gpu = load(dir_, Device::cuda(), Dtype::bf16);
  const auto [cf, cl] = run(*cpu.vlm);
  const auto [gf, gl] = run(*gpu.vlm);
  const double ef = relative_error(gf, cf), el = relative_error(gl, cl);
  const double rl = relative_error(gl, read(*ref_, "logits"));
  std::printf("%s bf16 GPU vs bf16 CPU: features %.3g logits %.3g; GPU vs transformers f32 logits %.3g\n",
              GetParam().c_str(), ef, el, rl);
  EXPECT_LE(ef, 5e-2);
  EXPECT_LE(el, 3e-2);
  EXPECT_LE(rl, 3e-2);
}

// Prefill of the image prompt into a cache, then 8 greedy steps on each device (the M-RoPE
// positions continue after the image): the same tokens, logits within 1e-4 at every step.
TEST_P(CudaQwen2VL, GreedyDecodingAfterTheImageEqualsTheCpu) {
  Loaded cpu = load(dir_, Device::cpu(), Dtype::f32), gpu = load(dir_, Device::cuda(), Dtype::f32);
  auto caches = [](const VisionLanguageModel& m) {
    nn::KVCacheList c;
    for (int64_t i = 0; i < m.num_layers(); ++i) c.push_back(std::make_unique<generate::SimpleKVCache>(16));
    return c;
  };
  nn::KVCacheList cc = caches(*cpu.vlm), gc = caches(*gpu.vlm);
  cpu.vlm->set_images(images_);
  gpu.vlm->set_images(images_);
  Tensor c = cpu.vlm->forward(ids_, &cc, {nullptr, true});
  Tensor g = gpu.vlm->forward(ids_, &gc, {nullptr, true}).to(Device::cpu());
  EXPECT_EQ(gpu.vlm->position_shift(), cpu.vlm->position_shift());
  std::vector<int32_t> cpu_tokens, gpu_tokens;
  auto argmax = [](const Tensor& t) {
    const std::vector<float> v = t.to_float_vector();
    size_t best = 0;
    for (size_t i = 1; i < v.size(); ++i)
      if (v[i] > v[best]) best = i;
    return static_cast<int32_t>(best);
  };
  for (int step = 0; step < 8; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    EXPECT_LE(relative_error(g, c), 1e-4);
    cpu_tokens.push_back(argmax(c));
    gpu_tokens.push_back(argmax(g));
    ASSERT_EQ(gpu_tokens.back(), cpu_tokens.back());
    c = cpu.vlm->forward(Tensor::from_vector(std::vector<int32_t>{cpu_tokens.back()}, {1, 1}), &cc, {nullptr, true});
    g = gpu.vlm->forward(Tensor::from_vector(std::vector<int32_t>{gpu_tokens.back()}, {1, 1}), &gc, {nullptr, true})
            .to(Device::cpu());
  }
  EXPECT_EQ(gpu_tokens, cpu_tokens);
}

// A weight left on the host of a GPU model is an error naming both devices, not a copy.
TEST_P(CudaQwen2VL, AWeightOnAnotherDeviceIsAnError) {
  Loaded gpu = load(dir_, Device::cuda(), Dtype::f32);
  int moved = 0;
  for (auto& p : gpu.loaded.model->parameters()) {
    if (p.name != "vision_tower.merger.mlp.0.weight" && p.name != "vision_tower.merger.linear_fc1.weight") continue;
    *p.tensor = p.tensor->to(Device::cpu());
    ++moved;
  }
  ASSERT_EQ(moved, 1);
  try {
    gpu.vlm->image_features(images_);
    ADD_FAILURE() << "no error";
  } catch (const InvalidArgument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("cpu"), std::string::npos) << what;
    EXPECT_NE(what.find("cuda"), std::string::npos) << what;
  }
}

INSTANTIATE_TEST_SUITE_P(Families, CudaQwen2VL, ::testing::Values("qwen2_vl", "qwen2_5_vl", "qwen3_vl"));

}  // namespace
}  // namespace lmx
