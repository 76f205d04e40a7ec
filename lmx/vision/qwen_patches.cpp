#include "lmx/vision/qwen_patches.h"

#include <algorithm>
#include <cmath>

#include "lmx/base/error.h"

namespace lmx::vision::detail {

std::pair<int, int> qwen_smart_resize(int height, int width, int factor, int64_t min_pixels, int64_t max_pixels,
                                      const std::string& source) {
  if (static_cast<double>(std::max(height, width)) / std::min(height, width) > 200) {
    throw InvalidArgument((source.empty() ? "image" : source) + ": Qwen2-VL takes images with an aspect ratio up to 200, got " +
                          std::to_string(width) + "x" + std::to_string(height));
  }
  int64_t h = static_cast<int64_t>(std::nearbyint(static_cast<double>(height) / factor)) * factor;
  int64_t w = static_cast<int64_t>(std::nearbyint(static_cast<double>(width) / factor)) * factor;
  const double area = static_cast<double>(height) * width;
  if (h * w > max_pixels) {
    const double beta = std::sqrt(area / static_cast<double>(max_pixels));
    h = std::max<int64_t>(factor, static_cast<int64_t>(std::floor(height / beta / factor)) * factor);
    w = std::max<int64_t>(factor, static_cast<int64_t>(std::floor(width / beta / factor)) * factor);
  } else if (h * w < min_pixels) {
    const double beta = std::sqrt(static_cast<double>(min_pixels) / area);
    h = static_cast<int64_t>(std::ceil(height * beta / factor)) * factor;
    w = static_cast<int64_t>(std::ceil(width * beta / factor)) * factor;
  }
  return {static_cast<int>(h), static_cast<int>(w)};
}

std::vector<int64_t> append_qwen_patches(ProcessorTensor& pixels, const std::vector<const std::vector<float>*>& frames,
                                         int height, int width, int temporal, int patch, int merge) {
  const int gh = height / patch, gw = width / patch;
  const int64_t gt = static_cast<int64_t>(frames.size()) / temporal;
  const size_t plane = static_cast<size_t>(height) * width;
  const size_t start = pixels.f32.size();
  pixels.f32.resize(start + static_cast<size_t>(gt) * gh * gw * 3 * temporal * patch * patch);
  float* out = pixels.f32.data() + start;
  for (int64_t g = 0; g < gt; ++g)
    for (int bh = 0; bh < gh / merge; ++bh)
      for (int bw = 0; bw < gw / merge; ++bw)
        for (int mh = 0; mh < merge; ++mh)
          for (int mw = 0; mw < merge; ++mw) {
            const int y0 = (bh * merge + mh) * patch, x0 = (bw * merge + mw) * patch;
            for (int c = 0; c < 3; ++c)
              for (int t = 0; t < temporal; ++t) {
                const float* base = frames[static_cast<size_t>(g * temporal + t)]->data() + c * plane;
                for (int py = 0; py < patch; ++py) {
                  const float* src = base + static_cast<size_t>(y0 + py) * width + x0;
                  out = std::copy(src, src + patch, out);
                }
              }
          }
  return {gt, gh, gw};
}

}  // namespace lmx::vision::detail
