// The array steps of transformers' Pillow-based processors, on 8-bit RGB images (crop,
// pad) and to float32 channels-first planes (rescale + normalize), with numpy's exact
// arithmetic: rescale in double then cast to float32, normalize in float32.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "lmx/vision/image.h"

namespace lmx::vision {

// Rows [y, y + h) and columns [x, x + w), clipped to the image as numpy slicing clips.
Image crop(const Image& image, int x, int y, int w, int h);

// transformers' center_crop: centred (top = floor((H - h) / 2)), zero padding where the
// crop is larger than the image.
Image center_crop(const Image& image, int height, int width);

// LLaVA's pad_to_square: the image centred on a square of `background`.
Image pad_to_square(const Image& image, std::array<uint8_t, 3> background);

struct Normalization {
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::array<double, 3> mean{0.5, 0.5, 0.5};
  std::array<double, 3> std{0.5, 0.5, 0.5};
};

// The normalized value of each byte value per channel ([channel][byte]): what the rescale
// and normalize steps give, so a lookup equals computing them.
using NormalizationTable = std::array<std::array<float, 256>, 3>;
NormalizationTable normalization_table(const Normalization& n);

// [3, height, width] float32: rescale, then normalize, as transformers does.
std::vector<float> to_normalized_planes(const Image& image, const Normalization& n);

}  // namespace lmx::vision
