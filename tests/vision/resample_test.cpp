// resize() against Pillow's Image.resize on uint8 RGB, byte for byte
// (tests/data/vision/resize/cases.json, made by tools/fixtures/make_image_fixtures.py).
#include "lmx/vision/resample.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/vision/image_decode.h"
#include "tests/vision/vision_test_util.h"

namespace lmx::vision {
namespace {

using testing::same_pixels;
using testing::vision_data;

TEST(Resample, EqualsPillowOnEveryCase) {
  std::ifstream in(vision_data("resize/cases.json"));
  auto cases = nlohmann::json::parse(in);
  ASSERT_GE(cases.size(), 60u);
  int checked = 0;
  for (const auto& c : cases) {
    Image src = load_image_file(vision_data("resize/" + c["source"].get<std::string>()));
    Image want = load_image_file(vision_data("resize/" + c["expected"].get<std::string>()));
    Image got = resize(src, c["width"], c["height"], resample_from_pil(c["filter"], "filter"));
    EXPECT_TRUE(same_pixels(got, want)) << c["expected"];
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(cases.size()));
}

TEST(Resample, BadArguments) {
  Image src = make_image(4, 4);
  EXPECT_THROW(resize(src, 0, 3, Resample::kBicubic), InvalidArgument);
  EXPECT_THROW(resample_from_pil(7, "resample"), InvalidArgument);
}

}  // namespace
}  // namespace lmx::vision
