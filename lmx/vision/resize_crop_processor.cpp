// The plain pipeline of transformers' PilBackend: (LLaVA: pad to square) -> resize ->
// centre crop -> rescale -> normalize, one [3, h, w] image each; pixel_values stacks them.
// CLIP resizes the shortest edge and crops; SigLIP resizes to a fixed size.
#include <array>
#include <cmath>
#include <string>

#include "lmx/base/error.h"
#include "lmx/vision/processor_families.h"

namespace lmx::vision::detail {
namespace {

struct PlainOptions {
  std::string type;
  bool do_resize = true;
  SizeDict size;
  Resample resample = Resample::kBicubic;
  bool do_center_crop = false;
  SizeDict crop_size;
  bool pad_to_square = false;
  Normalization norm;
};

class PlainProcessor : public ImageProcessor {
 public:
  PlainProcessor(PlainOptions o, std::string label) : o_(std::move(o)), label_(std::move(label)) {}
  std::string_view type() const override { return o_.type; }

  ProcessorOutput process(const std::vector<Image>& images) const override {
    ProcessorTensor pixels{.name = "pixel_values"};
    int64_t h = -1, w = -1;
    for (const Image& input : images) {
      Image image = input;
      if (o_.pad_to_square) {
        // transformers: tuple(int(x * 255) for x in image_mean)
        std::array<uint8_t, 3> bg;
        for (int c = 0; c < 3; ++c) {
          const double v = o_.norm.mean[c] * 255;
          if (!(std::fabs(v) < 2147483648.0)) {
            throw InvalidArgument(label_ + ": field 'image_mean' " + std::to_string(o_.norm.mean[c]) +
                                  " gives no padding colour (do_pad)");
          }
          bg[c] = static_cast<uint8_t>(static_cast<int>(v));
        }
        image = vision::pad_to_square(image, bg);
      }
      if (o_.do_resize) {
        auto [th, tw] = resize_target(image.height, image.width, o_.size, label_);
        image = resize(image, tw, th, o_.resample);
      }
      if (o_.do_center_crop) image = center_crop(image, o_.crop_size.height, o_.crop_size.width);
      if ((h >= 0 && (h != image.height || w != image.width))) {
        throw InvalidArgument(label_ + ": images of different sizes cannot be stacked (" +
                              std::to_string(w) + "x" + std::to_string(h) + " and " +
                              std::to_string(image.width) + "x" + std::to_string(image.height) + ")");
      }
      h = image.height;
      w = image.width;
      append_planes(pixels, to_normalized_planes(image, o_.norm));
    }
    pixels.shape = {static_cast<int64_t>(images.size()), 3, h, w};
    ProcessorOutput out;
    out.tensors.push_back(std::move(pixels));
    return out;
  }

 private:
  PlainOptions o_;
  std::string label_;
};

PlainOptions read_common(const ConfigReader& c, std::string type, SizeDict default_size,
                         bool int_is_square, std::array<double, 3> mean, std::array<double, 3> std,
                         bool default_crop) {
  PlainOptions o;
  o.type = std::move(type);
  o.do_resize = c.flag("do_resize", true);
  o.size = c.size("size", default_size, int_is_square);
  o.resample = c.resample(Resample::kBicubic);
  o.do_center_crop = c.flag("do_center_crop", default_crop);
  o.crop_size = c.size("crop_size", {.height = 224, .width = 224}, true);
  if (o.do_center_crop && (o.crop_size.height <= 0 || o.crop_size.width <= 0)) {
    c.fail("crop_size", "needs 'height' and 'width'");
  }
  o.norm = c.normalization(mean, std);
  return o;
}

}  // namespace

void append_planes(ProcessorTensor& tensor, const std::vector<float>& planes) {
  tensor.f32.insert(tensor.f32.end(), planes.begin(), planes.end());
}

std::unique_ptr<ImageProcessor> make_clip_processor(const ConfigReader& c) {
  return std::make_unique<PlainProcessor>(
      read_common(c, "CLIPImageProcessor", {.shortest_edge = 224}, false, kClipMean, kClipStd, true),
      c.label());
}

std::unique_ptr<ImageProcessor> make_siglip_processor(const ConfigReader& c) {
  return std::make_unique<PlainProcessor>(
      read_common(c, "SiglipImageProcessor", {.height = 224, .width = 224}, true, kHalf, kHalf, false),
      c.label());
}

std::unique_ptr<ImageProcessor> make_llava_processor(const ConfigReader& c) {
  PlainOptions o =
      read_common(c, "LlavaImageProcessor", {.shortest_edge = 224}, false, kClipMean, kClipStd, true);
  o.pad_to_square = c.flag("do_pad", false);
  return std::make_unique<PlainProcessor>(std::move(o), c.label());
}

}  // namespace lmx::vision::detail
