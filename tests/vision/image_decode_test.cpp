// Decoding checked against Pillow: tests/data/vision/decode/<file>.expected.png holds
// Pillow's open + exif_transpose + convert("RGB") of <file> (tools/fixtures/make_image_fixtures.py).
#include "lmx/vision/image_decode.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "lmx/base/error.h"
#include "tests/vision/vision_test_util.h"

namespace lmx::vision {
namespace {

using testing::same_pixels;
using testing::vision_data;

class DecodeMatchesPillow : public ::testing::TestWithParam<const char*> {};

TEST_P(DecodeMatchesPillow, Pixels) {
  const std::string name = GetParam();
  Image got = load_image_file(vision_data("decode/" + name));
  Image want = load_image_file(vision_data("decode/" + name + ".expected.png"));
  EXPECT_TRUE(same_pixels(got, want)) << name;
}

INSTANTIATE_TEST_SUITE_P(
    Files, DecodeMatchesPillow,
    ::testing::Values("rgb.png", "rgba.png", "rgba_alpha.png", "l.png", "la.png", "bilevel.png",
                      "p.png", "p16.png", "rgb16.png", "rgba16.png", "gray16.png", "la16.png",
                      "gray2.png", "gray4.png", "rgb.jpg", "rgb444.jpg", "progressive.jpg",
                      "gray.jpg", "cmyk.jpg", "lossy.webp", "lossless_alpha.webp",
                      "first_frame.gif", "orient2.png", "orient3.png", "orient4.png",
                      "orient5.png", "orient6.png", "orient7.png", "orient8.png", "orient6.jpg",
                      "orient3.webp", "one_pixel.png", "wide_100000x4.png"),
    [](const auto& info) {
      std::string n = info.param;
      for (char& c : n)
        if (!isalnum(static_cast<unsigned char>(c))) c = '_';
      return n;
    });

TEST(ImageDecode, ExpectedFilesAreThemselvesPlainRgb) {
  // The references are 8-bit RGB PNGs: their decoding is a copy of the stored samples.
  Image one = load_image_file(vision_data("decode/one_pixel.png.expected.png"));
  ASSERT_EQ(one.width, 1);
  EXPECT_EQ(one.rgb, (std::vector<uint8_t>{12, 200, 77}));
  Image wide = load_image_file(vision_data("decode/wide_100000x4.png"));
  EXPECT_EQ(wide.width, 100000);
  EXPECT_EQ(wide.height, 4);
}

template <typename E>
void expect_error(const std::string& rel, const std::string& part) {
  const std::string path = vision_data(rel).string();
  try {
    load_image_file(path);
    ADD_FAILURE() << rel << " decoded";
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(ImageDecode, BadInputGivesErrorsNamingTheFile) {
  expect_error<FormatError>("decode/bad/truncated.png", "PNG");
  expect_error<FormatError>("decode/bad/truncated.jpg", "truncated");
  expect_error<InvalidArgument>("decode/bad/bomb.jpg", "60000x60000");
  expect_error<FormatError>("decode/bad/not_an_image.png", "not an image");
  expect_error<FormatError>("decode/bad/empty.gif", "GIF");
  expect_error<IoError>("decode/bad/no_such_file.png", "cannot read");
}

TEST(ImageDecode, PixelLimitRefusesBeforeDecoding) {
  DecodeLimits small;
  small.max_pixels = 100;
  EXPECT_THROW(load_image_file(vision_data("decode/rgb.png"), small), InvalidArgument);
  EXPECT_THROW(load_image_file(vision_data("decode/rgb.jpg"), small), InvalidArgument);
  EXPECT_THROW(load_image_file(vision_data("decode/lossy.webp"), small), InvalidArgument);
  EXPECT_THROW(load_image_file(vision_data("decode/first_frame.gif"), small), InvalidArgument);
}

std::string base64(const std::vector<uint8_t>& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t v = in[i] << 16 | (i + 1 < in.size() ? in[i + 1] << 8 : 0) |
                 (i + 2 < in.size() ? in[i + 2] : 0);
    out += k[v >> 18];
    out += k[(v >> 12) & 63];
    out += i + 1 < in.size() ? k[(v >> 6) & 63] : '=';
    out += i + 2 < in.size() ? k[v & 63] : '=';
  }
  return out;
}

TEST(ImageDecode, DataUrlsAndBytes) {
  std::ifstream in(vision_data("decode/rgb.jpg"), std::ios::binary);
  std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), {}};
  Image want = load_image_file(vision_data("decode/rgb.jpg.expected.png"));
  EXPECT_TRUE(same_pixels(decode_image(bytes, "bytes"), want));
  EXPECT_TRUE(same_pixels(load_image("data:image/jpeg;base64," + base64(bytes)), want));
  EXPECT_THROW(load_image("data:image/jpeg;base64,@@@"), FormatError);
  EXPECT_THROW(load_image("data:image/jpeg,rawtext"), FormatError);
  Image raw = image_from_rgb(want.rgb, want.width, want.height);
  EXPECT_TRUE(same_pixels(raw, want));
  EXPECT_THROW(image_from_rgb(want.rgb, want.width + 1, want.height), InvalidArgument);
}

}  // namespace
}  // namespace lmx::vision
