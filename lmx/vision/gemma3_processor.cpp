// Gemma 3: every image (and, with pan-and-scan, its crops after it) resized to a fixed
// size; pixel_values [images + crops, 3, h, w], num_crops [images].
#include <cmath>
#include <string>

#include "lmx/base/error.h"
#include "lmx/vision/processor_families.h"

namespace lmx::vision::detail {
namespace {

class Gemma3Processor : public ImageProcessor {
 public:
  explicit Gemma3Processor(const ConfigReader& c) : label_(c.label()) {
    do_resize_ = c.flag("do_resize", true);
    size_ = c.size("size", {.height = 224, .width = 224}, true);
    if (do_resize_ && (size_.height <= 0 || size_.width <= 0)) c.fail("size", "needs 'height' and 'width'");
    resample_ = c.resample(Resample::kBilinear);
    norm_ = c.normalization(kHalf, kHalf);
    pan_and_scan_ = c.flag("do_pan_and_scan", false);
    min_crop_ = c.integer("pan_and_scan_min_crop_size", 0);
    max_crops_ = c.integer("pan_and_scan_max_num_crops", 0);
    min_ratio_ = c.number("pan_and_scan_min_ratio_to_activate", 0.0);
    if (pan_and_scan_ && (min_crop_ <= 0 || max_crops_ <= 0)) {
      c.fail("pan_and_scan_min_crop_size", "and pan_and_scan_max_num_crops must be set for pan-and-scan");
    }
  }

  std::string_view type() const override { return "Gemma3ImageProcessor"; }

  // transformers' pan_and_scan: crops along the long side when the aspect ratio is at
  // least min_ratio, their count close to the ratio and within [2, max_crops].
  std::vector<Image> crops(const Image& image) const {
    const int h = image.height, w = image.width;
    int nw = 1, nh = 1;
    if (w >= h) {
      if (static_cast<double>(w) / h < min_ratio_) return {};
      nw = static_cast<int>(std::floor(static_cast<double>(w) / h + 0.5));
      nw = std::min(static_cast<int>(std::floor(static_cast<double>(w) / min_crop_)), nw);
      nw = std::min(max_crops_, std::max(2, nw));
    } else {
      if (static_cast<double>(h) / w < min_ratio_) return {};
      nh = static_cast<int>(std::floor(static_cast<double>(h) / w + 0.5));
      nh = std::min(static_cast<int>(std::floor(static_cast<double>(h) / min_crop_)), nh);
      nh = std::min(max_crops_, std::max(2, nh));
    }
    const int cw = static_cast<int>(std::ceil(static_cast<double>(w) / nw));
    const int ch = static_cast<int>(std::ceil(static_cast<double>(h) / nh));
    if (std::min(cw, ch) < min_crop_) return {};
    std::vector<Image> out;
    for (int r = 0; r < nh; ++r)
      for (int c = 0; c < nw; ++c) out.push_back(crop(image, c * cw, r * ch, cw, ch));
    return out;
  }

  ProcessorOutput process(const std::vector<Image>& images) const override {
    ProcessorTensor pixels{.name = "pixel_values"};
    ProcessorTensor num_crops{.name = "num_crops"};
    int64_t count = 0, h = -1, w = -1;
    for (const Image& image : images) {
      std::vector<Image> parts{image};
      std::vector<Image> extra = pan_and_scan_ ? crops(image) : std::vector<Image>{};
      parts.insert(parts.end(), extra.begin(), extra.end());
      num_crops.i64.push_back(static_cast<int64_t>(extra.size()));
      for (Image& part : parts) {
        if (do_resize_) part = resize(part, size_.width, size_.height, resample_);
        if (h >= 0 && (h != part.height || w != part.width)) {
          throw InvalidArgument(label_ + ": images of different sizes cannot be stacked");
        }
        h = part.height;
        w = part.width;
        append_planes(pixels, to_normalized_planes(part, norm_));
        ++count;
      }
    }
    pixels.shape = {count, 3, h, w};
    num_crops.shape = {static_cast<int64_t>(images.size())};
    ProcessorOutput out;
    out.tensors.push_back(std::move(pixels));
    out.tensors.push_back(std::move(num_crops));
    return out;
  }

 private:
  std::string label_;
  bool do_resize_ = true;
  SizeDict size_;
  Resample resample_ = Resample::kBilinear;
  Normalization norm_;
  bool pan_and_scan_ = false;
  int min_crop_ = 0, max_crops_ = 0;
  double min_ratio_ = 0.0;
};

}  // namespace

std::unique_ptr<ImageProcessor> make_gemma3_processor(const ConfigReader& config) {
  return std::make_unique<Gemma3Processor>(config);
}

}  // namespace lmx::vision::detail
