// libFuzzer target: preprocessor_config.json (or processor_config.json) as a VLM folder
// brings it: make_image_processor picks the family by image_processor_type and reads its
// keys, then the processor runs on two small fixed images (odd sizes, one wide), so that
// sizes, patch / merge sizes, tiling and crop values reach the arithmetic they drive.
#include <cstdint>
#include <vector>

#include "lmx/vision/image.h"
#include "lmx/vision/image_processor.h"
#include "lmx/vision/resample.h"
#include "tests/fuzz/fuzz_target.h"

namespace {

lmx::vision::Image pattern(int width, int height) {
  lmx::vision::Image image = lmx::vision::make_image(width, height);
  uint32_t state = 12345u + static_cast<uint32_t>(width * 31 + height);
  for (uint8_t& v : image.rgb) v = static_cast<uint8_t>((state = state * 1664525u + 1013904223u) >> 24);
  return image;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<lmx::vision::Image> images = {pattern(29, 41), pattern(97, 13)};
  // 2 megapixels at most a resize (the default is ~179): a config may still ask for up to
  // the limit, and that must stay within libFuzzer's time and memory limits under ASan.
  static const bool limited = (lmx::vision::set_max_resize_pixels(int64_t{1} << 21), true);
  (void)limited;
  return lmx::fuzz::guarded([&] {
    auto processor = lmx::vision::make_image_processor(lmx::fuzz::as_text(data, size), "preprocessor_config.json");
    for (const lmx::vision::Image& image : images) {
      const lmx::vision::ProcessorOutput out = processor->process({image});
      for (const auto& t : out.tensors) {
        int64_t n = 1;
        for (int64_t d : t.shape) n *= d;
        const size_t have = t.i64.empty() ? t.f32.size() : t.i64.size();
        if (n < 0 || static_cast<size_t>(n) != have) lmx::fuzz::finding("image processor", "a tensor's shape and values differ");
      }
    }
  });
}
