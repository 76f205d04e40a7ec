// libFuzzer target: encoded image bytes (PNG, JPEG, WebP, GIF, with EXIF orientation) as
// `lmx generate --image`, a chat's image part or a data URL hands them to decode_image.
// The pixel limit is lowered to 4 megapixels so that a declared size the limit refuses
// is reached often and an accepted one stays within libFuzzer's memory limit.
#include "lmx/vision/image_decode.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return lmx::fuzz::guarded([&] {
    lmx::vision::DecodeLimits limits;
    limits.max_pixels = int64_t{1} << 22;
    const lmx::vision::Image image = lmx::vision::decode_image({data, size}, "image.bin", limits);
    if (image.width <= 0 || image.height <= 0 || image.rgb.size() != image.pixel_count() * 3)
      lmx::fuzz::finding("decode_image", "an image whose pixels do not match its size was returned");
  });
}
