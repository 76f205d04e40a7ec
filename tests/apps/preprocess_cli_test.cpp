// lmx preprocess end to end: the safetensors it writes hold transformers' outputs
// (tests/data/vision/processors, made by tools/fixtures/make_processor_fixtures.py).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "lmx/io/safetensors.h"

namespace {

namespace fs = std::filesystem;
using lmx::testing::lmx_run;
using lmx::testing::lmx_stderr;

fs::path vision_data(const std::string& rel) { return fs::path(LMX_SOURCE_DIR) / "tests/data/vision" / rel; }

class PreprocessCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmx-preprocess-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    std::ifstream in(vision_data("processors/cases.json"));
    const nlohmann::json meta = nlohmann::json::parse(in);
    for (const auto& c : meta["cases"]) cases_[c["name"].get<std::string>()] = c;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Every tensor of `got` equal to the fixture's to 1e-5 (integers exactly).
  static void expect_same(const fs::path& got_path, const std::string& name) {
    auto got = lmx::io::SafetensorsFile::open(got_path);
    auto want = lmx::io::SafetensorsFile::open(vision_data("processors/" + name + ".safetensors"));
    ASSERT_EQ(got.size(), want.size());
    for (const auto& w : want.tensors()) {
      const auto& g = got.at(w.name);
      ASSERT_EQ(g.shape, w.shape) << w.name;
      ASSERT_EQ(g.dtype, w.dtype) << w.name;
      ASSERT_EQ(g.nbytes, w.nbytes) << w.name;
      if (w.dtype == lmx::Dtype::f32) {
        std::vector<float> a(w.numel()), b(w.numel());
        std::memcpy(a.data(), g.data, g.nbytes);
        std::memcpy(b.data(), w.data, w.nbytes);
        for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5) << w.name << " at " << i;
      } else {
        EXPECT_EQ(std::memcmp(g.data, w.data, w.nbytes), 0) << w.name;
      }
    }
  }

  fs::path dir_;
  std::map<std::string, nlohmann::json> cases_;
};

TEST_F(PreprocessCli, ProcessorConfigFileGivesTransformersOutputs) {
  const auto& c = cases_.at("qwen2_vl_landscape");
  std::ofstream(dir_ / "preprocessor_config.json") << c["config"].dump();
  auto r = lmx_run("preprocess --processor-config " + (dir_ / "preprocessor_config.json").string() +
                   " --image " + vision_data(c["image"].get<std::string>()).string() + " --out " + (dir_ / "o.safetensors").string());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("Qwen2VLImageProcessor: pixel_values [12, 1176] f32 image_grid_thw [1, 3] i64"),
            std::string::npos)
      << r.out;
  expect_same(dir_ / "o.safetensors", "qwen2_vl_landscape");
}

TEST_F(PreprocessCli, ModelFolderGivesTransformersOutputs) {
  const auto& c = cases_.at("gemma3_pan_and_scan_landscape");
  fs::create_directories(dir_ / "model");
  std::ofstream(dir_ / "model/preprocessor_config.json") << c["config"].dump();
  auto r = lmx_run("preprocess --model " + (dir_ / "model").string() + " --image " +
                   vision_data(c["image"].get<std::string>()).string() + " --out " + (dir_ / "g.safetensors").string());
  ASSERT_EQ(r.status, 0) << r.out;
  expect_same(dir_ / "g.safetensors", "gemma3_pan_and_scan_landscape");
}

TEST_F(PreprocessCli, BadInputIsOneClearError) {
  std::ofstream(dir_ / "pp.json") << cases_.at("siglip_landscape")["config"].dump();
  const std::string cfg = " --processor-config " + (dir_ / "pp.json").string();
  const std::string out = " --out " + (dir_ / "x.safetensors").string();
  auto bomb = lmx_stderr("preprocess" + cfg + " --image " + vision_data("decode/bad/bomb.jpg").string() + out);
  EXPECT_NE(bomb.status, 0);
  EXPECT_NE(bomb.out.find("bomb.jpg: image of 60000x60000 pixels is over the limit"), std::string::npos) << bomb.out;
  auto text = lmx_stderr("preprocess" + cfg + " --image " + vision_data("decode/bad/not_an_image.png").string() + out);
  EXPECT_NE(text.status, 0);
  EXPECT_NE(text.out.find("not_an_image.png: not an image"), std::string::npos) << text.out;
  auto both = lmx_stderr("preprocess --model x" + cfg + " --image a.png" + out);
  EXPECT_NE(both.status, 0);
  EXPECT_NE(both.out.find("exactly one of --model and --processor-config"), std::string::npos) << both.out;
  EXPECT_FALSE(fs::exists(dir_ / "x.safetensors"));
}

}  // namespace
