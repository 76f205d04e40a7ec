// resize() against Pillow's Image.resize on uint8 RGB, byte for byte
// (tests/data/vision/resize/cases.json, made by tools/fixtures/make_image_fixtures.py).
#include "lmx/vision/resample.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/vision/image_decode.h"
#include "lmx/vision/resample_kernels.h"
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

// The vectorized kernels (where this CPU has them) against the scalar ones, which the
// Pillow cases above check: larger images than the cases, so most pixels take the
// vectorized path (up, slightly up as Qwen2-VL's 1920 -> 1932, down by up to 7, one axis).
TEST(Resample, VectorizedEqualsScalar) {
  Image src = make_image(301, 203);
  uint32_t state = 26;
  for (auto& v : src.rgb) v = static_cast<uint8_t>((state = state * 1664525u + 1013904223u) >> 24);
  const std::vector<std::pair<int, int>> sizes = {{310, 211}, {303, 205}, {150, 100}, {43, 29},
                                                 {301, 150}, {420, 203}, {97, 401}};
  for (FixedPoint fixed : {FixedPoint::kPillow, FixedPoint::kTorchUint8}) {
    for (int filter : {1, 2, 3, 4, 5}) {
      for (auto [w, h] : sizes) {
        const Resample r = resample_from_pil(filter, "filter");
        detail::enable_vector_kernels(false);
        const Image scalar = resize(src, w, h, r, fixed);
        detail::enable_vector_kernels(true);
        EXPECT_TRUE(same_pixels(resize(src, w, h, r, fixed), scalar)) << filter << " " << w << "x" << h;
      }
    }
  }
}

// Bands of a RowResizer equal the whole resize (bands overlap in the input rows they read).
TEST(Resample, RowResizerBandsEqualResize) {
  Image src = make_image(97, 61);
  uint32_t state = 18;
  for (auto& v : src.rgb) v = static_cast<uint8_t>((state = state * 1664525u + 1013904223u) >> 24);
  for (auto [w, h] : std::vector<std::pair<int, int>>{{112, 84}, {40, 28}, {97, 70}, {60, 61}}) {
    const Image whole = resize(src, w, h, Resample::kBicubic);
    RowResizer resizer(src, w, h, Resample::kBicubic);
    Image banded = make_image(w, h);
    for (int y = 0; y < h; y += 7) resizer.rows(y, std::min(7, h - y), banded.row(y));
    EXPECT_TRUE(same_pixels(banded, whole)) << w << "x" << h;
  }
  RowResizer resizer(src, 50, 50, Resample::kBicubic);
  std::vector<uint8_t> row(150);
  EXPECT_THROW(resizer.rows(49, 2, row.data()), InvalidArgument);
  EXPECT_THROW(RowResizer(src, 50, 50, Resample::kNearest), InvalidArgument);
}

TEST(Resample, BadArguments) {
  Image src = make_image(4, 4);
  EXPECT_THROW(resize(src, 0, 3, Resample::kBicubic), InvalidArgument);
  EXPECT_THROW(resample_from_pil(7, "resample"), InvalidArgument);
}

}  // namespace
}  // namespace lmx::vision
