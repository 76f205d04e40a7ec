// Qwen2-VL / Qwen2.5-VL / Qwen3-VL images: smart_resize to multiples of patch x merge
// within [min_pixels, max_pixels], then the frame repeated to temporal_patch_size and cut
// into patches in transformers' order: rows (block row, block column, row in block,
// column in block), columns (channel, frame, y in patch, x in patch).
#include <cmath>
#include <string>

#include "lmx/base/error.h"
#include "lmx/vision/processor_families.h"

namespace lmx::vision::detail {
namespace {

class Qwen2VLProcessor : public ImageProcessor {
 public:
  explicit Qwen2VLProcessor(const ConfigReader& c) : label_(c.label()) {
    SizeDict size = c.size("size", {.shortest_edge = 56 * 56, .longest_edge = 28 * 28 * 1280}, false);
    min_pixels_ = size.shortest_edge;
    max_pixels_ = size.longest_edge;
    min_pixels_ = c.integer64("min_pixels", min_pixels_);
    max_pixels_ = c.integer64("max_pixels", max_pixels_);
    if (min_pixels_ <= 0 || max_pixels_ <= 0) {
      c.fail("size", "needs 'shortest_edge' and 'longest_edge' (min / max pixels)");
    }
    do_resize_ = c.flag("do_resize", true);
    resample_ = c.resample(Resample::kBicubic);
    norm_ = c.normalization(kClipMean, kClipStd);
    patch_ = c.integer("patch_size", 14);
    temporal_ = c.integer("temporal_patch_size", 2);
    merge_ = c.integer("merge_size", 2);
    if (patch_ <= 0 || temporal_ <= 0 || merge_ <= 0) c.fail("patch_size", "and merge sizes must be positive");
  }

  std::string_view type() const override { return "Qwen2VLImageProcessor"; }

  // transformers' smart_resize (Python's round: half to even).
  std::pair<int, int> smart_resize(int height, int width, const std::string& source) const {
    const int factor = patch_ * merge_;
    if (static_cast<double>(std::max(height, width)) / std::min(height, width) > 200) {
      throw InvalidArgument((source.empty() ? "image" : source) + ": Qwen2-VL takes images with an aspect ratio up to 200, got " +
                            std::to_string(width) + "x" + std::to_string(height));
    }
    int64_t h = static_cast<int64_t>(std::nearbyint(static_cast<double>(height) / factor)) * factor;
    int64_t w = static_cast<int64_t>(std::nearbyint(static_cast<double>(width) / factor)) * factor;
    const double area = static_cast<double>(height) * width;
    if (h * w > max_pixels_) {
      const double beta = std::sqrt(area / static_cast<double>(max_pixels_));
      h = std::max<int64_t>(factor, static_cast<int64_t>(std::floor(height / beta / factor)) * factor);
      w = std::max<int64_t>(factor, static_cast<int64_t>(std::floor(width / beta / factor)) * factor);
    } else if (h * w < min_pixels_) {
      const double beta = std::sqrt(static_cast<double>(min_pixels_) / area);
      h = static_cast<int64_t>(std::ceil(height * beta / factor)) * factor;
      w = static_cast<int64_t>(std::ceil(width * beta / factor)) * factor;
    }
    return {static_cast<int>(h), static_cast<int>(w)};
  }

  ProcessorOutput process(const std::vector<Image>& images) const override {
    ProcessorTensor pixels{.name = "pixel_values"};
    ProcessorTensor grid{.name = "image_grid_thw"};
    const int64_t row_size = 3LL * temporal_ * patch_ * patch_;
    int64_t rows = 0;
    for (const Image& image : images) {
      Image resized = image;
      if (do_resize_) {
        auto [h, w] = smart_resize(image.height, image.width, image.source);
        resized = resize(image, w, h, resample_);
      }
      if (resized.height % (patch_ * merge_) || resized.width % (patch_ * merge_)) {
        throw InvalidArgument(label_ + ": a " + std::to_string(resized.width) + "x" +
                              std::to_string(resized.height) +
                              " image is not made of whole merged patches (do_resize is off)");
      }
      const std::vector<float> planes = to_normalized_planes(resized, norm_);
      const int gh = resized.height / patch_, gw = resized.width / patch_;
      const size_t plane = resized.pixel_count();
      const size_t start = pixels.f32.size();
      pixels.f32.resize(start + static_cast<size_t>(gh) * gw * row_size);
      float* out = pixels.f32.data() + start;
      for (int bh = 0; bh < gh / merge_; ++bh)
        for (int bw = 0; bw < gw / merge_; ++bw)
          for (int mh = 0; mh < merge_; ++mh)
            for (int mw = 0; mw < merge_; ++mw) {
              const int y0 = (bh * merge_ + mh) * patch_, x0 = (bw * merge_ + mw) * patch_;
              for (int c = 0; c < 3; ++c)
                for (int t = 0; t < temporal_; ++t)  // one image: every frame is the same
                  for (int py = 0; py < patch_; ++py) {
                    const float* src = planes.data() + c * plane +
                                       static_cast<size_t>(y0 + py) * resized.width + x0;
                    for (int px = 0; px < patch_; ++px) *out++ = src[px];
                  }
            }
      rows += static_cast<int64_t>(gh) * gw;
      grid.i64.insert(grid.i64.end(), {1, gh, gw});
    }
    pixels.shape = {rows, row_size};
    grid.shape = {static_cast<int64_t>(images.size()), 3};
    ProcessorOutput result;
    result.tensors.push_back(std::move(pixels));
    result.tensors.push_back(std::move(grid));
    return result;
  }

 private:
  std::string label_;
  int64_t min_pixels_ = 0, max_pixels_ = 0;
  bool do_resize_ = true;
  Resample resample_ = Resample::kBicubic;
  Normalization norm_;
  int patch_ = 14, temporal_ = 2, merge_ = 2;
};

}  // namespace

std::unique_ptr<ImageProcessor> make_qwen2_vl_processor(const ConfigReader& config) {
  return std::make_unique<Qwen2VLProcessor>(config);
}

}  // namespace lmx::vision::detail
