#include "lmx/vision/qwen_patches.h"

#include <algorithm>
#include <cmath>

#include "lmx/base/error.h"
#include "lmx/vision/large_buffer.h"

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

std::vector<int64_t> append_qwen_patches(ProcessorTensor& pixels, const std::vector<const Image*>& frames,
                                         const NormalizationTable& table, int temporal, int patch, int merge) {
  const int height = frames.front()->height, width = frames.front()->width;
  const int gh = height / patch, gw = width / patch;
  const int64_t gt = static_cast<int64_t>(frames.size()) / temporal;
  // Appended row by row (no zero fill of the whole output first: it is tens of MB for a
  // large image, and filling it cost more than the patching).
  const size_t row_size = static_cast<size_t>(3) * temporal * patch * patch;
  reserve_large(pixels.f32, pixels.f32.size() + static_cast<size_t>(gt) * gh * gw * row_size);
  std::vector<float> row(row_size);
  for (int64_t g = 0; g < gt; ++g)
    for (int bh = 0; bh < gh / merge; ++bh)
      for (int bw = 0; bw < gw / merge; ++bw)
        for (int mh = 0; mh < merge; ++mh)
          for (int mw = 0; mw < merge; ++mw) {
            const int y0 = (bh * merge + mh) * patch, x0 = (bw * merge + mw) * patch;
            float* out = row.data();
            for (int c = 0; c < 3; ++c) {
              const auto& lut = table[static_cast<size_t>(c)];
              for (int t = 0; t < temporal; ++t) {
                const Image& frame = *frames[static_cast<size_t>(g * temporal + t)];
                for (int py = 0; py < patch; ++py) {
                  const uint8_t* src = frame.row(y0 + py) + 3 * x0 + c;
                  for (int px = 0; px < patch; ++px) *out++ = lut[src[3 * px]];
                }
              }
            }
            pixels.f32.insert(pixels.f32.end(), row.begin(), row.end());
          }
  return {gt, gh, gw};
}

}  // namespace lmx::vision::detail
