#include "lmx/vision/image_ops.h"

#include <algorithm>
#include <cstring>

namespace lmx::vision {
namespace {

int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

}  // namespace

Image crop(const Image& in, int x, int y, int w, int h) {
  const int x0 = std::clamp(x, 0, in.width), x1 = std::clamp(x + w, 0, in.width);
  const int y0 = std::clamp(y, 0, in.height), y1 = std::clamp(y + h, 0, in.height);
  Image out = make_image(x1 - x0, y1 - y0);
  for (int r = y0; r < y1; ++r) {
    std::memcpy(out.row(r - y0), in.row(r) + 3 * x0, static_cast<size_t>(x1 - x0) * 3);
  }
  return out;
}

Image center_crop(const Image& in, int height, int width) {
  int top = floor_div(in.height - height, 2);
  int left = floor_div(in.width - width, 2);
  if (top >= 0 && left >= 0 && top + height <= in.height && left + width <= in.width) {
    return crop(in, left, top, width, height);
  }
  // Too small on some side: centre it on zeros first (top pad rounded up), then crop.
  const int new_h = std::max(height, in.height), new_w = std::max(width, in.width);
  const int top_pad = (new_h - in.height + 1) / 2, left_pad = (new_w - in.width + 1) / 2;
  Image padded = make_image(new_w, new_h);
  for (int r = 0; r < in.height; ++r) {
    std::memcpy(padded.row(r + top_pad) + 3 * left_pad, in.row(r), static_cast<size_t>(in.width) * 3);
  }
  top += top_pad;
  left += left_pad;
  const int y0 = std::max(0, top), y1 = std::min(new_h, top + height);
  const int x0 = std::max(0, left), x1 = std::min(new_w, left + width);
  return crop(padded, x0, y0, x1 - x0, y1 - y0);
}

Image pad_to_square(const Image& in, std::array<uint8_t, 3> background) {
  if (in.width == in.height) return in;
  const int side = std::max(in.width, in.height);
  Image out = make_image(side, side);
  for (size_t i = 0; i < out.pixel_count(); ++i) std::memcpy(&out.rgb[3 * i], background.data(), 3);
  const int top = in.width > in.height ? (side - in.height) / 2 : 0;
  const int left = in.width > in.height ? 0 : (side - in.width) / 2;
  for (int r = 0; r < in.height; ++r) {
    std::memcpy(out.row(r + top) + 3 * left, in.row(r), static_cast<size_t>(in.width) * 3);
  }
  return out;
}

NormalizationTable normalization_table(const Normalization& n) {
  NormalizationTable t{};
  for (int c = 0; c < 3; ++c) {
    const float mean = static_cast<float>(n.mean[c]);
    const float std = static_cast<float>(n.std[c]);
    for (int v = 0; v < 256; ++v) {
      float f = n.do_rescale ? static_cast<float>(static_cast<double>(v) * n.rescale_factor) : static_cast<float>(v);
      if (n.do_normalize) f = (f - mean) / std;
      t[static_cast<size_t>(c)][static_cast<size_t>(v)] = f;
    }
  }
  return t;
}

std::vector<float> to_normalized_planes(const Image& in, const Normalization& n) {
  const NormalizationTable table = normalization_table(n);
  const size_t plane = in.pixel_count();
  std::vector<float> out(3 * plane);
  for (int c = 0; c < 3; ++c) {
    const auto& lut = table[static_cast<size_t>(c)];
    float* dst = out.data() + c * plane;
    const uint8_t* src = in.rgb.data() + c;
    for (size_t i = 0; i < plane; ++i) dst[i] = lut[src[3 * i]];
  }
  return out;
}

}  // namespace lmx::vision
