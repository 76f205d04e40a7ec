// Image processors. The reference is tests/data/vision/processors/ (transformers 5.17's
// Pillow processors, Pillow 12.3, run by tools/fixtures/make_processor_fixtures.py on the
// GPU machine): every output of 17 cases equal to 1e-5.
#include "lmx/vision/image_processor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "lmx/base/error.h"
#include "lmx/io/safetensors.h"
#include "lmx/vision/image_decode.h"
#include "lmx/vision/resample.h"
#include "tests/vision/vision_test_util.h"

namespace lmx::vision {
namespace {

using testing::vision_data;

std::unique_ptr<ImageProcessor> processor(const nlohmann::json& config) {
  return make_image_processor(config.dump(), "test config");
}

TEST(ImageProcessor, EqualsTransformersOnFixtures) {
  const auto cases_path = vision_data("processors/cases.json");
  std::ifstream in(cases_path);
  auto meta = nlohmann::json::parse(in);
  ASSERT_EQ(meta["cases"].size(), 21u);
  for (const auto& c : meta["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    auto proc = processor(c["config"]);
    ProcessorOutput got = proc->process({load_image_file(vision_data(c["image"].get<std::string>()))});
    auto want = io::SafetensorsFile::open(vision_data("processors/" + name + ".safetensors"));
    ASSERT_EQ(got.tensors.size(), want.size());
    for (const auto& w : want.tensors()) {
      const ProcessorTensor& g = got.at(w.name);
      ASSERT_EQ(g.shape, w.shape) << w.name;
      if (w.dtype == Dtype::f32) {
        ASSERT_TRUE(g.is_f32()) << w.name;
        std::vector<float> ref(static_cast<size_t>(w.numel()));
        std::memcpy(ref.data(), w.data, w.nbytes);
        size_t bad = 0;
        double worst = 0;
        for (size_t i = 0; i < ref.size(); ++i) {
          double d = std::fabs(static_cast<double>(g.f32[i]) - ref[i]);
          worst = std::max(worst, d);
          if (d > 1e-5 * std::max(1.0, std::fabs(static_cast<double>(ref[i])))) ++bad;
        }
        EXPECT_EQ(bad, 0u) << w.name << ": worst difference " << worst;
      } else {
        ASSERT_EQ(w.dtype, Dtype::i64) << w.name;
        std::vector<int64_t> ref(static_cast<size_t>(w.numel()));
        std::memcpy(ref.data(), w.data, w.nbytes);
        EXPECT_EQ(g.i64, ref) << w.name;
      }
    }
  }
}

Image random_image(int width, int height, unsigned seed) {
  std::mt19937 rng(seed);
  Image image = make_image(width, height);
  for (auto& v : image.rgb) v = static_cast<uint8_t>(rng() & 0xFF);
  return image;
}

// The default config (no fixture case uses it): 1920x1080 under 28*28*1280 pixels gives
// beta = sqrt(1920*1080 / 1003520) and 728 x 1316 (worked out by hand from smart_resize).
TEST(ImageProcessor, Qwen2VLDefaultsOnA1080pImage) {
  auto p = processor({{"image_processor_type", "Qwen2VLImageProcessor"}});
  auto out = p->process({random_image(1920, 1080, 1)});
  EXPECT_EQ(out.at("image_grid_thw").i64, (std::vector<int64_t>{1, 52, 94}));  // 728 x 1316
  EXPECT_EQ(out.at("pixel_values").shape, (std::vector<int64_t>{52 * 94, 3 * 2 * 14 * 14}));
  // A 1x1 image grows to min_pixels: 56x56.
  auto tiny = p->process({random_image(1, 1, 2)});
  EXPECT_EQ(tiny.at("image_grid_thw").i64, (std::vector<int64_t>{1, 4, 4}));
}

TEST(ImageProcessor, ConfigErrorsNameTheField) {
  auto expect_error = [](const std::string& json, const std::string& part) {
    try {
      make_image_processor(json, "cfg.json");
      ADD_FAILURE() << json;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"image_processor_type": "NoSuchImageProcessor"})", "NoSuchImageProcessor");
  expect_error(R"({"size": {"height": 3}})", "image_processor_type");
  expect_error(R"({"image_processor_type": "SiglipImageProcessor", "image_mean": "x"})", "image_mean");
  expect_error(R"({"image_processor_type": "SiglipImageProcessor", "resample": 9})", "resample");
  expect_error(R"({"image_processor_type": "CLIPImageProcessor", "do_resize": 1})", "do_resize");
  expect_error("not json", "JSON");
  // Whole numbers past int64 (the image_processor fuzz target: a float past int64 reached a cast).
  expect_error(R"({"image_processor_type": "SmolVLMImageProcessor", "max_image_size": {"longest_edge": 1.7e77}})",
               "longest_edge");
  expect_error(R"({"image_processor_type": "SiglipImageProcessor", "size": {"height": 18446744073709551615}})",
               "height");
  // processor_config.json nests the keys; unknown keys are ignored.
  auto p = make_image_processor(
      R"({"image_processor": {"image_processor_type": "SiglipImageProcessorFast", "zzz": 1}})", "pc.json");
  EXPECT_EQ(p->type(), "SiglipImageProcessor");
}

TEST(ImageProcessor, ExtremeAspectRatioNamesTheImage) {
  auto p = processor({{"image_processor_type", "Qwen2VLImageProcessor"}});
  Image wide = load_image_file(vision_data("decode/wide_100000x4.png"));
  try {
    p->process({wide});
    ADD_FAILURE() << "processed";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("wide_100000x4.png"), std::string::npos) << e.what();
  }
}

// Sizes no vision model takes (found by the image_processor fuzz target: these ended in
// std::bad_alloc): a clear InvalidArgument naming the config before gigabytes are allocated.
TEST(ImageProcessor, SizesPastTheLimitsAreRefusedNamingTheConfig) {
  Image small = make_image(29, 41);
  for (uint8_t& v : small.rgb) v = static_cast<uint8_t>(&v - small.rgb.data());
  auto expect_refused = [&](const std::string& json, const std::string& part) {
    auto p = make_image_processor(json, "cfg.json");
    try {
      p->process({small});
      ADD_FAILURE() << "processed: " << json;
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_refused(R"({"image_processor_type": "SiglipImageProcessor", "size": {"height": 90000, "width": 90000}})",
                 "past the limit of 178956970 pixels");
  expect_refused(R"({"image_processor_type": "SmolVLMImageProcessor", "size": {"longest_edge": 100000},
                     "max_image_size": {"longest_edge": 100000}})",
                 "past the limit");
  expect_refused(R"({"image_processor_type": "Qwen2VLImageProcessor", "min_pixels": 40000000000,
                     "max_pixels": 80000000000})",
                 "past the limit");
  // A padding colour from a mean past int (the fuzz target's second UB finding).
  expect_refused(R"({"image_processor_type": "LlavaImageProcessor", "do_pad": true,
                     "image_mean": [0.48, 26130258, 0.27]})",
                 "image_mean");
  // A shortest edge that scales the long side past int (a 97x13 image: 7.5x).
  try {
    make_image_processor(R"({"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 1073741824}})",
                         "cfg.json")
        ->process({make_image(97, 13)});
    ADD_FAILURE() << "processed";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("cfg.json: size asks for a side of"), std::string::npos) << e.what();
  }
  expect_refused(R"({"image_processor_type": "Idefics3ImageProcessor", "size": {"longest_edge": 4096},
                     "max_image_size": {"longest_edge": 16}})",
                 "tiles, past the limit of 4096");
  // The limit is settable (the fuzz targets lower it) and applies to the next resize.
  const int64_t before = max_resize_pixels();
  set_max_resize_pixels(1000);
  expect_refused(R"({"image_processor_type": "SiglipImageProcessor", "size": {"height": 32, "width": 32}})",
                 "1024 pixels) is past the limit of 1000");
  set_max_resize_pixels(before);
  auto fine = make_image_processor(R"({"image_processor_type": "SiglipImageProcessor", "size": {"height": 32, "width": 32}})",
                                   "cfg.json");
  EXPECT_EQ(fine->process({small}).at("pixel_values").shape, (std::vector<int64_t>{1, 3, 32, 32}));
}

}  // namespace
}  // namespace lmx::vision
