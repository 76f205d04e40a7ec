// Vision-language models against transformers 5.17: tiny random-weight models made by
// tools/fixtures/make_vlm_fixtures.py (tests/data/vision/models/<family>), with the
// processor's pixel_values, the expanded input_ids, the projected image features, the
// text model's hidden states and the fp32 logits.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "../parity_util.h"
#include "growing_cache.h"
#include "lmx/base/error.h"
#include "lmx/core/ops/shape.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/models/load.h"
#include "lmx/models/quantize.h"
#include "lmx/models/save.h"
#include "lmx/models/registry.h"
#include "lmx/models/vlm/image_inputs.h"
#include "lmx/models/vlm/vision_language_model.h"
#include "lmx/tokenizer/tokenizer.h"
#include "lmx/vision/image_decode.h"
#include "lmx/vision/image_processor.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;
using models::vlm::ImageInputs;
using models::vlm::VisionLanguageModel;
using testing::read_tensor;
using testing::relative_error;
using testing::growing_caches;

fs::path folder(const std::string& family) {
  return fs::path(LMX_SOURCE_DIR) / "tests/data/vision/models" / family;
}

struct Fixture {
  models::LoadedModel loaded;
  VisionLanguageModel* vlm = nullptr;
  io::SafetensorsFile ref;
  Tensor ids;
  ImageInputs images;
};

Fixture open_fixture(const std::string& family) {
  Fixture f{models::load_model(folder(family)), nullptr,
            io::SafetensorsFile::open(folder(family) / "reference.safetensors"), {}, {}};
  f.vlm = dynamic_cast<VisionLanguageModel*>(f.loaded.model.get());
  f.ids = read_tensor(f.ref, "input_ids");
  f.images = models::vlm::read_image_inputs(folder(family) / "reference.safetensors");
  return f;
}

// The model's logits over ids in calls that end at `ends` (the first carries the images)
// with one cache, concatenated along the sequence.
Tensor logits_in_calls(VisionLanguageModel& vlm, const Tensor& ids, const ImageInputs& images,
                       const std::vector<int64_t>& ends) {
  nn::KVCacheList caches = growing_caches(vlm);
  vlm.set_images(images);
  std::vector<Tensor> parts;
  int64_t start = 0;
  for (int64_t end : ends) {
    parts.push_back(vlm.forward(ids.slice(1, start, end).contiguous(), &caches, {}));
    start = end;
  }
  return parts.size() == 1 ? parts[0] : ops::concat(parts, 1);
}

Tensor logits_in_calls(Fixture& f, const std::vector<int64_t>& ends) {
  return logits_in_calls(*f.vlm, f.ids, f.images, ends);
}

// PaliGemma's fixture has a causal suffix after the prefix that carries the image (as
// generation's prefill and then its decoding steps see them): the prefix is one call.
int64_t prefix_length(const Fixture& f) {
  const io::TensorInfo* p = f.ref.find("prefix_length");
  return p ? static_cast<int64_t>(read_tensor(f.ref, "prefix_length").to(Dtype::f32).to_float_vector().at(0)) : 0;
}

class VlmParity : public ::testing::TestWithParam<std::string> {};

TEST_P(VlmParity, ImageFeaturesHiddenStatesAndLogitsMatchTransformers) {
  Fixture f = open_fixture(GetParam());
  ASSERT_NE(f.vlm, nullptr) << GetParam() << " did not load as a vision-language model";
  const std::vector<Tensor> stack = f.vlm->image_feature_stack(f.images);
  EXPECT_LE(relative_error(stack.at(0), read_tensor(f.ref, "image_features")), 1e-4);
  for (size_t i = 1; i < stack.size(); ++i) {
    EXPECT_LE(relative_error(stack[i], read_tensor(f.ref, "vision.deepstack." + std::to_string(i - 1))), 1e-4);
  }
  if (const int64_t prefix = prefix_length(f)) {
    Tensor want = read_tensor(f.ref, "logits");
    EXPECT_LE(relative_error(logits_in_calls(f, {prefix, f.ids.dim(1)}), want), 1e-4);
    return;
  }
  std::vector<Tensor> hidden;
  models::ForwardOptions opt;
  opt.hidden_states = &hidden;
  f.vlm->set_images(f.images);
  Tensor logits = f.vlm->forward(f.ids, nullptr, opt);
  for (size_t i = 0; i < hidden.size(); ++i) {
    ASSERT_LE(relative_error(hidden[i], read_tensor(f.ref, "hidden." + std::to_string(i))), 1e-4)
        << "hidden state " << i << " (0 = embeddings with the image features) diverges first";
  }
  Tensor want = read_tensor(f.ref, "logits");
  ASSERT_EQ(logits.shape(), want.shape());
  EXPECT_LE(relative_error(logits, want), 1e-4);
}

// The processor's placeholder count per image equals what the expanded input_ids hold.
TEST_P(VlmParity, ImageTokenCountsMatchTheExpandedPrompt) {
  Fixture f = open_fixture(GetParam());
  int64_t placeholders = 0;
  for (float v : f.ids.to(Dtype::f32).to_float_vector()) placeholders += v == f.vlm->image_token_id() ? 1 : 0;
  int64_t counted = 0;
  for (int64_t n : f.vlm->image_token_counts(f.images)) counted += n;
  EXPECT_EQ(counted, placeholders);
  EXPECT_GT(placeholders, 0);
}

// Prefill of all but the last token into a cache, then the last token alone: the same
// logits as the whole prompt at once (M-RoPE's rope_deltas carry over to decoding;
// Gemma 3's image blocks in the prefill, its sliding window over the kept keys).
TEST_P(VlmParity, DecodingAfterAnImagePromptContinuesThePositions) {
  Fixture f = open_fixture(GetParam());
  const int64_t L = f.ids.dim(1), prefix = prefix_length(f);
  std::vector<int64_t> ends{prefix > 0 ? prefix : L - 1};
  if (ends.back() < L - 1) ends.push_back(L - 1);
  ends.push_back(L);
  Tensor logits = logits_in_calls(f, ends);
  Tensor last = logits.slice(1, L - 1, L).contiguous();
  Tensor want = read_tensor(f.ref, "logits").slice(1, L - 1, L).contiguous();
  EXPECT_LE(relative_error(last, want), 1e-4);
}

// What `lmx generate --image` does before the model runs: the folder's processor on the
// fixture's images gives transformers' pixel_values, and the chat template's one marker
// per image expands to the fixture's input_ids.
TEST_P(VlmParity, ProcessorAndPromptExpansionGiveTheFixtureInputs) {
  Fixture f = open_fixture(GetParam());
  std::vector<vision::Image> images;
  for (const char* name : {"image0.png", "image1.png"}) {
    if (fs::exists(folder(GetParam()) / name)) images.push_back(vision::load_image((folder(GetParam()) / name).string()));
  }
  ImageInputs got = models::vlm::image_inputs(vision::load_image_processor(folder(GetParam()))->process(images));
  EXPECT_LE(relative_error(got.pixel_values, f.images.pixel_values), 1e-5);
  // The prompts make_vlm_fixtures.py expanded, with one marker per image; the families with
  // a tokenizer.json in their fixture store the prompt as prompt_ids.
  const std::map<std::string, std::vector<int32_t>> prompts = {
      {"llava", {1, 17, 33, 9, 250, 40, 41, 120, 7, 99}},
      {"llava_qwen2", {1, 17, 33, 9, 250, 40, 41, 120, 7, 99}},
      {"qwen2_vl", {1, 30, 31, 252, 250, 253, 60, 61, 252, 250, 253, 61, 62, 90, 91, 92}},
      {"qwen3_vl", {1, 30, 31, 252, 250, 253, 60, 61, 252, 250, 253, 61, 62, 90, 91, 92}},
      {"qwen3_vl_moe", {1, 30, 31, 252, 250, 253, 60, 61, 252, 250, 253, 61, 62, 90, 91, 92}},
      {"qwen2_5_vl", {1, 30, 31, 252, 250, 253, 60, 61, 90, 91, 92}},
      {"gemma3", {2, 20, 21, 108, 250, 108, 22, 108, 250, 108, 23, 24, 25}},
      {"paligemma", {250, 1, 40, 41, 42, 108, 60, 61, 62, 63}},
  };
  const bool own_tokenizer = fs::exists(folder(GetParam()) / "tokenizer.json");
  // A vocabulary where "\n\n" is token 108, as in Gemma's.
  const auto tok = own_tokenizer ? tokenizer::Tokenizer::from_folder(folder(GetParam()))
                                 : tokenizer::Tokenizer::from_json_text(
      R"({"model": {"type": "WordLevel", "vocab": {"a": 0, "\n\n": 108}, "unk_token": "a"}})", {}, "test tokenizer");
  std::vector<int32_t> prompt;
  if (own_tokenizer) {
    for (float v : read_tensor(f.ref, "prompt_ids").to(Dtype::f32).to_float_vector()) prompt.push_back(static_cast<int32_t>(v));
  } else {
    prompt = prompts.at(GetParam());
  }
  const std::vector<int32_t> expanded = models::vlm::expand_image_prompt(*f.vlm, prompt, got, tok);
  std::vector<int32_t> want;
  for (float v : f.ids.to(Dtype::f32).to_float_vector()) want.push_back(static_cast<int32_t>(v));
  EXPECT_EQ(expanded, want);
  EXPECT_THROW(models::vlm::expand_image_prompt(*f.vlm, {1, 2, 3}, got, tok), InvalidArgument);
}

// Hub checkpoints are bf16: the same model with bf16 weights stays within 3e-2.
TEST_P(VlmParity, Bf16WeightsStayClose) {
  Fixture f = open_fixture(GetParam());
  const io::ModelFolder mf = io::ModelFolder::open(folder(GetParam()));
  models::WeightDict bf16;
  for (auto& [name, t] : models::read_weights(mf)) bf16[name] = t.to(Dtype::bf16);
  auto model = models::create_folder_model(models::ConfigReader(mf.raw_config(), "config.json"),
                                           models::ConfigReader(mf.text_config(), "config.json"));
  models::load_weights(*model, bf16, mf.raw_config(), GetParam());
  model->prepare_for_inference();
  auto* vlm = dynamic_cast<VisionLanguageModel*>(model.get());
  const int64_t prefix = prefix_length(f);
  std::vector<int64_t> ends{prefix > 0 ? prefix : f.ids.dim(1)};
  if (ends.back() < f.ids.dim(1)) ends.push_back(f.ids.dim(1));
  EXPECT_LE(relative_error(logits_in_calls(*vlm, f.ids, f.images, ends), read_tensor(f.ref, "logits")), 3e-2);
}

INSTANTIATE_TEST_SUITE_P(Families, VlmParity,
                         ::testing::Values("llava", "qwen2_vl", "qwen2_5_vl", "gemma3", "paligemma", "idefics3",
                                           "smolvlm", "mistral3", "qwen3_vl", "llava_pixtral",
                                           "qwen3_vl_moe", "llava_qwen2"));

// MLX-quantized vision-language folders (mlx-community's layout: the language model
// quantized, the vision tower and projector in float): lmx's quantizer on the fp32
// fixture, saved as a folder and loaded back, against transformers run on the fixture with
// the same language-model weights MLX-quantized and dequantized.
class VlmQuantized : public ::testing::TestWithParam<std::string> {};

TEST_P(VlmQuantized, LanguageModelQuantizedAsMlxCommunityMatchesTheDequantizedReference) {
  nlohmann::json q;
  std::ifstream(folder(GetParam()) / "quantization.json") >> q;
  const std::string source = q["source"].get<std::string>();
  Fixture f = open_fixture(source);
  models::QuantizeOptions o;
  o.bits = q["bits"].get<int>();
  o.group_size = q["group_size"].get<int>();
  const std::vector<std::string> paths = models::quantize_model(*f.loaded.model, o);
  EXPECT_EQ(static_cast<int64_t>(paths.size()), q["quantized_modules"].get<int64_t>());
  for (const std::string& p : paths) EXPECT_TRUE(p.starts_with("language_model.")) << p;

  models::SaveOptions opts;
  opts.quantization = o;
  const fs::path out = fs::temp_directory_path() / ("lmx-vlm-q-" + GetParam() + "-" + std::to_string(::getpid()));
  models::save_model(*f.loaded.model, folder(source), out, opts);
  models::LoadedModel reloaded = models::load_model(out);
  size_t vision_scales = 0, text_scales = 0;
  for (const auto& [name, t] : models::read_weights(reloaded.folder)) {
    if (!name.ends_with(".scales")) continue;
    ++(name.starts_with("language_model.") ? text_scales : vision_scales);
  }
  fs::remove_all(out);
  EXPECT_EQ(vision_scales, 0u);
  EXPECT_EQ(text_scales, paths.size());

  auto* vlm = dynamic_cast<VisionLanguageModel*>(reloaded.model.get());
  ASSERT_NE(vlm, nullptr);
  const io::SafetensorsFile ref = io::SafetensorsFile::open(folder(GetParam()) / "reference.safetensors");
  const ops::QuantActivations saved = ops::quant_activations();
  for (auto [precision, tolerance] : {std::pair{ops::QuantActivations::f32, 1e-4}, {ops::QuantActivations::int16, 1e-3}}) {
    ops::set_quant_activations(precision);
    vlm->set_images(f.images);
    EXPECT_LE(relative_error(vlm->forward(f.ids, nullptr, {}), read_tensor(ref, "logits")), tolerance);
  }
  ops::set_quant_activations(saved);
}

INSTANTIATE_TEST_SUITE_P(Families, VlmQuantized, ::testing::Values("llava_q4_g32", "qwen2_vl_q4_g32", "gemma3_q4_g32"));

// The same weights under transformers 5's names (model.language_model.*, model.vision_tower.*
// or model.visual.*, lm_head), mlx-vlm's Qwen2-VL names (language_model.*, vision_tower.*)
// and llava-hf's vision_tower.vision_model.* give the model the fixtures' layout gives.
TEST(VlmCheckpoints, TransformersFiveAndMlxVlmNamesLoad) {
  for (const std::string family : {"llava", "qwen2_vl"}) {
    Fixture f = open_fixture(family);
    f.vlm->set_images(f.images);
    const Tensor want = f.vlm->forward(f.ids, nullptr, {});
    const io::ModelFolder mf = io::ModelFolder::open(folder(family));
    for (bool v5 : {true, false}) {
      models::WeightDict renamed;
      for (auto& [name, t] : models::read_weights(mf)) {
        std::string n = name;
        auto swap = [&](const std::string& from, const std::string& to) {
          if (n.rfind(from, 0) != 0) return false;
          n = to + n.substr(from.size());
          return true;
        };
        if (family == "qwen2_vl") {  // stored as model.* (text) and visual.*
          (void)(swap("visual.", v5 ? "model.visual." : "vision_tower.") ||
                 swap("model.", v5 ? "model.language_model." : "language_model.model."));
        } else if (v5) {  // stored as language_model.{model,lm_head}.*, vision_tower.*, multi_modal_projector.*
          (void)(swap("language_model.model.", "model.language_model.") || swap("language_model.lm_head.", "lm_head.") ||
                 swap("vision_tower.", "model.vision_tower.") ||
                 swap("multi_modal_projector.", "model.multi_modal_projector."));
        } else {  // llava-hf's and mlx-vlm's CLIPVisionModel wrapper
          swap("vision_tower.", "vision_tower.vision_model.");
        }
        // mlx-vlm's patch convolutions are channels last.
        const bool conv = n.find("patch_embed") != std::string::npos && n.ends_with("weight");
        std::vector<int> last{0, 2, 3, 1};
        if (t.ndim() == 5) last = {0, 2, 3, 4, 1};
        renamed[n] = conv && !v5 ? t.permute(last).contiguous() : t;
      }
      auto model = models::create_folder_model(models::ConfigReader(mf.raw_config(), "config.json"),
                                               models::ConfigReader(mf.text_config(), "config.json"));
      models::load_weights(*model, renamed, mf.raw_config(), family);
      auto* vlm = dynamic_cast<VisionLanguageModel*>(model.get());
      vlm->set_images(f.images);
      EXPECT_LE(relative_error(vlm->forward(f.ids, nullptr, {}), want), 1e-6) << family << (v5 ? " transformers 5" : " hub / mlx-vlm");
    }
  }
}

TEST(VlmBadInput, MorePlaceholdersThanImageFeaturesIsRefused) {
  Fixture f = open_fixture("llava");
  std::vector<float> ids = f.ids.to(Dtype::f32).to_float_vector();
  std::vector<int32_t> more(ids.begin(), ids.end());
  more.push_back(static_cast<int32_t>(f.vlm->image_token_id()));
  f.vlm->set_images(f.images);
  try {
    f.vlm->forward(Tensor::from_vector(more, {1, static_cast<int64_t>(more.size())}), nullptr, {});
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("17 image placeholders"), std::string::npos) << e.what();
  }
}

TEST(VlmBadInput, PlaceholdersWithoutImagesAreRefused) {
  Fixture f = open_fixture("gemma3");
  EXPECT_THROW(f.vlm->forward(f.ids, nullptr, {}), InvalidArgument);
}

TEST(VlmBadInput, WrongPixelValuesShapeNamesTheField) {
  Fixture f = open_fixture("llava");
  ImageInputs bad;
  bad.pixel_values = f.images.pixel_values.slice(3, 0, 24).contiguous();
  f.vlm->set_images(bad);
  try {
    f.vlm->forward(f.ids, nullptr, {});
    FAIL() << "expected ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("pixel_values"), std::string::npos) << e.what();
  }
}

TEST(VlmBadInput, GridRowsThatDisagreeWithPixelValuesAreRefused) {
  Fixture f = open_fixture("qwen2_vl");
  ImageInputs bad = f.images;
  bad.pixel_values = f.images.pixel_values.slice(0, 0, 24).contiguous();
  f.vlm->set_images(bad);
  EXPECT_THROW(f.vlm->forward(f.ids, nullptr, {}), ShapeError);
  ImageInputs no_grid;
  no_grid.pixel_values = f.images.pixel_values;
  f.vlm->set_images(no_grid);
  EXPECT_THROW(f.vlm->forward(f.ids, nullptr, {}), InvalidArgument);
}

}  // namespace
}  // namespace lmx
