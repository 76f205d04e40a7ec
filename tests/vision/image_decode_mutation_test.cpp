// Damaged files: random byte changes and truncations of every format's fixtures either
// decode or throw an lmx::Error; never a crash, a hang or another exception type.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <random>

#include "lmx/base/error.h"
#include "lmx/vision/image_decode.h"
#include "tests/vision/vision_test_util.h"

namespace lmx::vision {
namespace {

TEST(ImageDecodeMutation, DamagedFilesDecodeOrThrowLmxErrors) {
  std::mt19937 rng(26);
  int decoded = 0, refused = 0;
  for (const char* name : {"rgb.png", "p16.png", "rgb.jpg", "progressive.jpg", "cmyk.jpg",
                           "lossy.webp", "lossless_alpha.webp", "first_frame.gif", "orient6.jpg"}) {
    std::ifstream in(testing::vision_data(std::string("decode/") + name), std::ios::binary);
    const std::vector<uint8_t> original{std::istreambuf_iterator<char>(in), {}};
    ASSERT_GT(original.size(), 64u) << name;
    for (int trial = 0; trial < 150; ++trial) {
      std::vector<uint8_t> bytes = original;
      const int edits = 1 + static_cast<int>(rng() % 8);
      for (int e = 0; e < edits; ++e) {
        // Header bytes (sizes, markers) are hit more often: they steer the decoders.
        size_t at = rng() % 2 ? rng() % std::min<size_t>(bytes.size(), 64) : rng() % bytes.size();
        bytes[at] = static_cast<uint8_t>(rng());
      }
      if (trial % 5 == 0) bytes.resize(rng() % bytes.size());
      DecodeLimits limits;
      limits.max_pixels = 1 << 22;  // keeps a damaged size field from costing much memory
      try {
        Image image = decode_image(bytes, name, limits);
        EXPECT_EQ(image.rgb.size(), image.pixel_count() * 3);
        ++decoded;
      } catch (const Error&) {
        ++refused;
      }
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(decoded, 0);
}

}  // namespace
}  // namespace lmx::vision
