// Pixtral / Mistral 3: each image kept at its own size, scaled down (floor) to fit
// size.longest_edge (or height x width), then resized up to whole patches; normalized
// images are padded with zeros at the bottom and right to the largest of the request.
// The multimodal processor asks for patches of patch_size * spatial_merge_size (read
// here when the config carries spatial_merge_size, as load_image_processor adds it from
// processor_config.json). Outputs pixel_values [images, 3, H, W] and image_sizes [images, 2].
#include <algorithm>
#include <cmath>
#include <string>

#include "lmx/base/error.h"
#include "lmx/vision/processor_families.h"

namespace lmx::vision::detail {
namespace {

class PixtralProcessor : public ImageProcessor {
 public:
  explicit PixtralProcessor(const ConfigReader& c) {
    do_resize_ = c.flag("do_resize", true);
    const SizeDict size = c.size("size", {.longest_edge = 1024}, true);
    max_h_ = size.longest_edge ? size.longest_edge : size.height;
    max_w_ = size.longest_edge ? size.longest_edge : size.width;
    if (max_h_ <= 0 || max_w_ <= 0) c.fail("size", "needs 'longest_edge' or 'height' and 'width'");
    const SizeDict patch = c.size("patch_size", {.height = 16, .width = 16}, true);
    const int merge = c.integer("spatial_merge_size", 1);
    if (patch.height <= 0 || patch.width <= 0) c.fail("patch_size", "needs 'height' and 'width'");
    if (merge <= 0) c.fail("spatial_merge_size", "must be positive");
    patch_h_ = patch.height * merge;
    patch_w_ = patch.width * merge;
    resample_ = c.resample(Resample::kBicubic);
    norm_ = c.normalization(kClipMean, kClipStd);
  }

  std::string_view type() const override { return "PixtralImageProcessor"; }

  ProcessorOutput process(const std::vector<Image>& images) const override {
    std::vector<Image> resized;
    int max_h = 0, max_w = 0;
    for (const Image& input : images) {
      Image image = input;
      if (do_resize_) {
        double h = image.height, w = image.width;
        const double ratio = std::max(h / max_h_, w / max_w_);
        if (ratio > 1) {
          h = std::floor(h / ratio);
          w = std::floor(w / ratio);
        }
        // Whole patches, rounding up: ((h - 1) // patch + 1) * patch.
        const auto up = [](double v, int p) { return (static_cast<int>(std::floor((v - 1) / p)) + 1) * p; };
        image = resize(image, up(w, patch_w_), up(h, patch_h_), resample_);
      }
      max_h = std::max(max_h, image.height);
      max_w = std::max(max_w, image.width);
      resized.push_back(std::move(image));
    }
    ProcessorTensor pixels{.name = "pixel_values"};
    ProcessorTensor sizes{.name = "image_sizes"};
    const size_t plane = static_cast<size_t>(max_h) * max_w;
    pixels.f32.assign(resized.size() * 3 * plane, 0.0f);
    for (size_t i = 0; i < resized.size(); ++i) {
      const Image& im = resized[i];
      const std::vector<float> planes = to_normalized_planes(im, norm_);
      for (int c = 0; c < 3; ++c) {
        for (int y = 0; y < im.height; ++y) {
          std::copy_n(planes.data() + (static_cast<size_t>(c) * im.height + y) * im.width, im.width,
                      pixels.f32.data() + (i * 3 + c) * plane + static_cast<size_t>(y) * max_w);
        }
      }
      sizes.i64.push_back(im.height);
      sizes.i64.push_back(im.width);
    }
    const auto n = static_cast<int64_t>(resized.size());
    pixels.shape = {n, 3, max_h, max_w};
    sizes.shape = {n, 2};
    ProcessorOutput out;
    out.tensors.push_back(std::move(pixels));
    out.tensors.push_back(std::move(sizes));
    return out;
  }

 private:
  bool do_resize_ = true;
  int max_h_ = 0, max_w_ = 0, patch_h_ = 16, patch_w_ = 16;
  Resample resample_ = Resample::kBicubic;
  Normalization norm_;
};

}  // namespace

std::unique_ptr<ImageProcessor> make_pixtral_processor(const ConfigReader& config) {
  return std::make_unique<PixtralProcessor>(config);
}

}  // namespace lmx::vision::detail
