// Videos through the Qwen2-VL families against transformers 5.17: the committed tiny
// qwen2_vl / qwen2_5_vl / qwen3_vl folders given a video (tools/fixtures/make_video_fixtures.py
// on frames the ffmpeg CLI decoded; tests/data/vision/video/reference/models/<family>_video):
// the video features, the M-RoPE positions (through decoding after the prompt) and the logits.
#include <gtest/gtest.h>

#include <filesystem>

#include "../parity_util.h"
#include "growing_cache.h"
#include "lmx/base/error.h"
#include "lmx/core/ops/shape.h"
#include "lmx/models/load.h"
#include "lmx/models/vlm/image_inputs.h"
#include "lmx/models/vlm/vision_language_model.h"
#include "lmx/tokenizer/tokenizer.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;
using models::vlm::ImageInputs;
using models::vlm::VisionLanguageModel;
using testing::read_tensor;
using testing::relative_error;

fs::path data(const std::string& rel) { return fs::path(LMX_SOURCE_DIR) / "tests/data/vision" / rel; }
fs::path reference(const std::string& family) {
  return data("video/reference/models/" + family + "_video/reference.safetensors");
}

struct VideoFixture {
  models::LoadedModel loaded;
  VisionLanguageModel* vlm = nullptr;
  io::SafetensorsFile ref;
  Tensor ids;
  ImageInputs inputs;
};

VideoFixture open_video_fixture(const std::string& family) {
  VideoFixture f{models::load_model(data("models/" + family)), nullptr, io::SafetensorsFile::open(reference(family)),
                 {}, {}};
  f.vlm = dynamic_cast<VisionLanguageModel*>(f.loaded.model.get());
  f.ids = read_tensor(f.ref, "input_ids");
  f.inputs = models::vlm::read_image_inputs(reference(family));
  return f;
}

class VlmVideo : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!fs::exists(reference(GetParam()))) GTEST_SKIP() << "no video reference for " << GetParam();
  }
};

TEST_P(VlmVideo, VideoFeaturesAndLogitsMatchTransformers) {
  VideoFixture f = open_video_fixture(GetParam());
  ASSERT_NE(f.vlm, nullptr);
  ASSERT_TRUE(f.inputs.has_videos());
  EXPECT_FALSE(f.inputs.has_images());
  const std::vector<Tensor> stack = f.vlm->video_feature_stack(f.inputs);
  if (f.ref.find("video_features")) {
    EXPECT_LE(relative_error(stack.at(0), read_tensor(f.ref, "video_features")), 1e-4);
  }
  int64_t placeholders = 0;
  for (float v : f.ids.to(Dtype::f32).to_float_vector()) placeholders += v == f.vlm->video_token_id();
  int64_t counted = 0;
  for (int64_t n : f.vlm->video_token_counts(f.inputs)) counted += n;
  EXPECT_EQ(counted, placeholders);
  f.vlm->set_images(f.inputs);
  const Tensor logits = f.vlm->forward(f.ids, nullptr, {});
  const Tensor want = read_tensor(f.ref, "logits");
  ASSERT_EQ(logits.shape(), want.shape());
  EXPECT_LE(relative_error(logits, want), 1e-4);
}

// The prompt in one call, then its last two tokens one by one over the cache: the M-RoPE
// offset after the video (rope_deltas) carries over.
TEST_P(VlmVideo, DecodingAfterAVideoPromptContinuesThePositions) {
  VideoFixture f = open_video_fixture(GetParam());
  const int64_t L = f.ids.dim(1);
  nn::KVCacheList caches = testing::growing_caches(*f.vlm);
  f.vlm->set_images(f.inputs);
  f.vlm->forward(f.ids.slice(1, 0, L - 2).contiguous(), &caches, {});
  f.vlm->forward(f.ids.slice(1, L - 2, L - 1).contiguous(), &caches, {});
  const Tensor last = f.vlm->forward(f.ids.slice(1, L - 1, L).contiguous(), &caches, {});
  const Tensor want = read_tensor(f.ref, "logits").slice(1, L - 1, L).contiguous();
  EXPECT_LE(relative_error(last, want), 1e-4);
}

// Placeholders without videos, or videos without enough placeholders, are refused.
TEST_P(VlmVideo, MismatchedPlaceholdersAreRefused) {
  VideoFixture f = open_video_fixture(GetParam());
  EXPECT_THROW(f.vlm->forward(f.ids, nullptr, {}), InvalidArgument);
  f.vlm->set_images(f.inputs);
  const int64_t L = f.ids.dim(1);
  EXPECT_THROW(f.vlm->forward(f.ids.slice(1, 0, L / 2).contiguous(), nullptr, {}), InvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Families, VlmVideo, ::testing::Values("qwen2_vl", "qwen2_5_vl", "qwen3_vl"));

}  // namespace
}  // namespace lmx
