// Qwen2-VL / Qwen2.5-VL / Qwen3-VL images: smart_resize to multiples of patch x merge
// within [min_pixels, max_pixels], then the frame repeated to temporal_patch_size and cut
// into patches (lmx/vision/qwen_patches.h).
#include <cmath>
#include <string>
#include <tuple>
#include <utility>

#include "lmx/base/error.h"
#include "lmx/vision/processor_families.h"
#include "lmx/vision/qwen_patches.h"

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
    table_ = normalization_table(norm_);
    patch_ = c.integer("patch_size", 14);
    temporal_ = c.integer("temporal_patch_size", 2);
    merge_ = c.integer("merge_size", 2);
    if (patch_ <= 0 || temporal_ <= 0 || merge_ <= 0) c.fail("patch_size", "and merge sizes must be positive");
  }

  std::string_view type() const override { return "Qwen2VLImageProcessor"; }

  ProcessorOutput process(const std::vector<Image>& images) const override {
    ProcessorTensor pixels{.name = "pixel_values"};
    ProcessorTensor grid{.name = "image_grid_thw"};
    const int64_t row_size = 3LL * temporal_ * patch_ * patch_;
    int64_t rows = 0;
    for (const Image& image : images) {
      auto [h, w] = std::pair{image.height, image.width};
      if (do_resize_) {
        std::tie(h, w) = qwen_smart_resize(image.height, image.width, patch_ * merge_, min_pixels_, max_pixels_,
                                           image.source);
      }
      if (h % (patch_ * merge_) || w % (patch_ * merge_)) {
        throw InvalidArgument(label_ + ": a " + std::to_string(w) + "x" + std::to_string(h) +
                              " image is not made of whole merged patches (do_resize is off)");
      }
      const std::vector<int64_t> thw = append_qwen_image(pixels, image, w, h, resample_, table_, temporal_, patch_, merge_);
      rows += thw[1] * thw[2];
      grid.i64.insert(grid.i64.end(), thw.begin(), thw.end());
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
  NormalizationTable table_{};
  int patch_ = 14, temporal_ = 2, merge_ = 2;
};

}  // namespace

std::unique_ptr<ImageProcessor> make_qwen2_vl_processor(const ConfigReader& config) {
  return std::make_unique<Qwen2VLProcessor>(config);
}

}  // namespace lmx::vision::detail
