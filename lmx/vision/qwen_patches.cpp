#include "lmx/vision/qwen_patches.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

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
  // The sides first: their product could pass int64 before it is compared.
  if (h > std::numeric_limits<int>::max() || w > std::numeric_limits<int>::max() || h * w > max_resize_pixels()) {
    throw InvalidArgument("min_pixels " + std::to_string(min_pixels) + " / max_pixels " + std::to_string(max_pixels) +
                          " ask for a " + std::to_string(w) + "x" + std::to_string(h) + " image, past the limit of " +
                          std::to_string(max_resize_pixels()) + " pixels");
  }
  return {static_cast<int>(h), static_cast<int>(w)};
}

namespace {

// The patch rows of one row of merged blocks, written at `out`: bands[t] has frame t's
// merge * patch rows (`width` pixels each). A frame equal to the one before (an image
// repeated to the temporal patch size) is copied, not looked up again. Returns the end.
float* write_block_row(float* out, const std::vector<const uint8_t*>& bands, int width, const NormalizationTable& table,
                       int patch, int merge) {
  const size_t temporal = bands.size(), plane = static_cast<size_t>(patch) * patch;
  const size_t stride = static_cast<size_t>(width) * 3;
  for (int bw = 0; bw < width / (patch * merge); ++bw)
    for (int mh = 0; mh < merge; ++mh)
      for (int mw = 0; mw < merge; ++mw, out += 3 * temporal * plane) {
        const size_t y0 = static_cast<size_t>(mh) * patch, x0 = static_cast<size_t>(bw * merge + mw) * patch;
        // Channel c of frame t at out[(c * temporal + t) * plane]: the three channels of a
        // pixel are read together.
        for (size_t t = 0; t < temporal; ++t) {
          float* dst[3] = {out + t * plane, out + (temporal + t) * plane, out + (2 * temporal + t) * plane};
          if (t > 0 && bands[t] == bands[t - 1]) {
            for (float* d : dst) std::copy(d - plane, d, d);
            continue;
          }
          for (int py = 0; py < patch; ++py) {
            const uint8_t* src = bands[t] + (y0 + py) * stride + 3 * x0;
            for (int px = 0; px < patch; ++px, src += 3) {
              *dst[0]++ = table[0][src[0]];
              *dst[1]++ = table[1][src[1]];
              *dst[2]++ = table[2][src[2]];
            }
          }
        }
      }
  return out;
}

// Room for `rows` more patch rows at the end of `pixels` (uninitialized: every value is
// written once); returns where they start.
float* grow_rows(ProcessorTensor& pixels, int64_t rows, size_t row_size) {
  const size_t old = pixels.f32.size();
  pixels.f32.resize(old + static_cast<size_t>(rows) * row_size);
  return pixels.f32.data() + old;
}

}  // namespace

std::vector<int64_t> append_qwen_patches(ProcessorTensor& pixels, const std::vector<const Image*>& frames,
                                         const NormalizationTable& table, int temporal, int patch, int merge) {
  const int height = frames.front()->height, width = frames.front()->width;
  const int gh = height / patch, gw = width / patch;
  const int64_t gt = static_cast<int64_t>(frames.size()) / temporal;
  float* out = grow_rows(pixels, gt * gh * gw, static_cast<size_t>(3) * temporal * patch * patch);
  std::vector<const uint8_t*> bands(static_cast<size_t>(temporal));
  for (int64_t g = 0; g < gt; ++g)
    for (int bh = 0; bh < gh / merge; ++bh) {
      for (int t = 0; t < temporal; ++t) bands[t] = frames[static_cast<size_t>(g * temporal + t)]->row(bh * merge * patch);
      out = write_block_row(out, bands, width, table, patch, merge);
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
  RowResizer resizer(image, width, height, filter);  // first: it checks the target against the limits
  float* out = grow_rows(pixels, static_cast<int64_t>(gh) * gw, static_cast<size_t>(3) * temporal * patch * patch);
  std::vector<uint8_t> band(static_cast<size_t>(band_rows) * width * 3);
  const std::vector<const uint8_t*> bands(static_cast<size_t>(temporal), band.data());
  for (int bh = 0; bh < gh / merge; ++bh) {
    resizer.rows(bh * band_rows, band_rows, band.data());
    out = write_block_row(out, bands, width, table, patch, merge);
  }
  return {1, gh, gw};
}

}  // namespace lmx::vision::detail
