// Image resizing equal to Pillow's Image.resize(size, resample) on 8-bit RGB (no box, no
// reducing_gap: what transformers calls): support-scaled filters (antialiasing when
// shrinking), 22-bit fixed-point coefficients, rounding and clipping as Pillow's, the
// horizontal pass first. docs/vision.md says how it was checked.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "lmx/vision/image.h"

namespace lmx::vision {

// Pillow's numbering (PIL.Image.Resampling), which preprocessor_config.json uses.
enum class Resample { kNearest = 0, kLanczos = 1, kBilinear = 2, kBicubic = 3, kBox = 4, kHamming = 5 };

// lmx::InvalidArgument naming `field` for a number outside 0..5.
Resample resample_from_pil(int code, std::string_view field);

// The weights' fixed point: Pillow's (22 fractional bits), or that of torch's uint8
// antialiased kernel (the same weights, with the most fractional bits that keep the
// axis' largest weight within int16: 14 when it is near 1), which torchvision's resize
// runs for uint8 images and so transformers' video processors.
enum class FixedPoint { kPillow, kTorchUint8 };

// The most pixels a resize may produce (its target's width x height): twice Pillow's
// MAX_IMAGE_PIXELS, the decoders' limit too. A processor config whose sizes ask for more
// gets an lmx::InvalidArgument naming the target, not gigabytes of allocation.
// set_max_resize_pixels lowers it (the fuzz targets do); it applies to resizes started after.
int64_t max_resize_pixels();
void set_max_resize_pixels(int64_t pixels);

// lmx::InvalidArgument for a size that is not positive or past max_resize_pixels().
Image resize(const Image& image, int width, int height, Resample filter, FixedPoint fixed = FixedPoint::kPillow);

// The same resize, a band of rows at a time (what a processor that consumes a few rows at
// a time uses: no full-size image, and only the input rows a band needs are resampled
// along x). Not for kNearest. `image` must outlive it.
class RowResizer {
 public:
  // lmx::InvalidArgument for a size that is not positive or past max_resize_pixels(), or for kNearest.
  RowResizer(const Image& image, int width, int height, Resample filter, FixedPoint fixed = FixedPoint::kPillow);
  ~RowResizer();
  RowResizer(const RowResizer&) = delete;
  RowResizer& operator=(const RowResizer&) = delete;
  // Output rows [y0, y0 + count) into `dst` (count * width * 3 bytes). Bands are fastest
  // taken top to bottom.
  void rows(int y0, int count, uint8_t* dst);

 private:
  struct Plan;
  std::unique_ptr<Plan> plan_;
};

}  // namespace lmx::vision
