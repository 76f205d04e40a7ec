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

namespace {

// The patch rows of one row of merged blocks: bands[t] has frame t's merge * patch rows
// (`width` pixels each). A frame equal to the one before (an image repeated to the
// temporal patch size) is copied, not looked up again.
void append_block_row(std::vector<float>& out, const std::vector<const uint8_t*>& bands, int width,
                      const NormalizationTable& table, int patch, int merge) {
  const size_t temporal = bands.size(), plane = static_cast<size_t>(patch) * patch;
  const size_t stride = static_cast<size_t>(width) * 3;
  std::vector<float> row(3 * temporal * plane);
  for (int bw = 0; bw < width / (patch * merge); ++bw)
    for (int mh = 0; mh < merge; ++mh)
      for (int mw = 0; mw < merge; ++mw) {
        const size_t y0 = static_cast<size_t>(mh) * patch, x0 = static_cast<size_t>(bw * merge + mw) * patch;
        float* dst = row.data();
        for (int c = 0; c < 3; ++c) {
          const auto& lut = table[static_cast<size_t>(c)];
          for (size_t t = 0; t < temporal; ++t, dst += plane) {
            if (t > 0 && bands[t] == bands[t - 1]) {
              std::copy(dst - plane, dst, dst);
              continue;
            }
            float* o = dst;
            for (int py = 0; py < patch; ++py) {
              const uint8_t* src = bands[t] + (y0 + py) * stride + 3 * x0 + c;
              for (int px = 0; px < patch; ++px) *o++ = lut[src[3 * px]];
            }
          }
        }
        out.insert(out.end(), row.begin(), row.end());
      }
}

// Output space for `rows` more patch rows, reserved (no zero fill of the whole output
// first: it is tens of MB for a large image, and filling it cost more than the patching).
void reserve_rows(ProcessorTensor& pixels, int64_t rows, size_t row_size) {
  reserve_large(pixels.f32, pixels.f32.size() + static_cast<size_t>(rows) * row_size);
}

}  // namespace

std::vector<int64_t> append_qwen_patches(ProcessorTensor& pixels, const std::vector<const Image*>& frames,
                                         const NormalizationTable& table, int temporal, int patch, int merge) {
  const int height = frames.front()->height, width = frames.front()->width;
  const int gh = height / patch, gw = width / patch;
  const int64_t gt = static_cast<int64_t>(frames.size()) / temporal;
  reserve_rows(pixels, gt * gh * gw, static_cast<size_t>(3) * temporal * patch * patch);
  std::vector<const uint8_t*> bands(static_cast<size_t>(temporal));
  for (int64_t g = 0; g < gt; ++g)
    for (int bh = 0; bh < gh / merge; ++bh) {
      for (int t = 0; t < temporal; ++t) bands[t] = frames[static_cast<size_t>(g * temporal + t)]->row(bh * merge * patch);
      append_block_row(pixels.f32, bands, width, table, patch, merge);
    }
  return {gt, gh, gw};
}

std::vector<int64_t> append_qwen_image(ProcessorTensor& pixels, const Image& image, int width, int height,
                                       Resample filter, const NormalizationTable& table, int temporal, int patch,
                                       int merge) {
  const bool resized = width != image.width || height != image.height;
  if (!resized || filter == Resample::kNearest) {
    const Image scaled = resized ? resize(image, width, height, filter) : Image{};
    return append_qwen_patches(pixels, std::vector<const Image*>(static_cast<size_t>(temporal), resized ? &scaled : &image),
                               table, temporal, patch, merge);
  }
  const int gh = height / patch, gw = width / patch, band_rows = patch * merge;
  reserve_rows(pixels, static_cast<int64_t>(gh) * gw, static_cast<size_t>(3) * temporal * patch * patch);
  RowResizer resizer(image, width, height, filter);
  std::vector<uint8_t> band(static_cast<size_t>(band_rows) * width * 3);
  const std::vector<const uint8_t*> bands(static_cast<size_t>(temporal), band.data());
  for (int bh = 0; bh < gh / merge; ++bh) {
    resizer.rows(bh * band_rows, band_rows, band.data());
    append_block_row(pixels.f32, bands, width, table, patch, merge);
  }
  return {1, gh, gw};
}

}  // namespace lmx::vision::detail
