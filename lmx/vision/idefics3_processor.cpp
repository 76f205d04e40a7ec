// Idefics3 / SmolVLM: the long side resized to size.longest_edge (the short side even),
// then to whole tiles of max_image_size, cut into tiles row by row, followed by the global
// image (the whole resized to one tile); all padded to the largest, with
// pixel_attention_mask marking real pixels. Shapes [1, frames, 3, h, w] and [1, frames, h, w];
// rows and cols [1, images] (what the prompt expansion needs).
#include <cmath>
#include <string>

#include "lmx/base/error.h"
#include "lmx/vision/processor_families.h"

namespace lmx::vision::detail {
namespace {

constexpr int kMaxImageSize = 4096;  // transformers' MAX_IMAGE_SIZE for Idefics3
// Tiles of one image: transformers sets none (a 4096-pixel image at max_image_size 364 is 12 x 12);
// ours keeps a tiny max_image_size from cutting millions of them.
constexpr int64_t kMaxTiles = 4096;

class Idefics3Processor : public ImageProcessor {
 public:
  Idefics3Processor(const ConfigReader& c, bool smolvlm) : label_(c.label()), smolvlm_(smolvlm) {
    const int tile = smolvlm ? 512 : 364;
    do_resize_ = c.flag("do_resize", true);
    longest_edge_ = c.size("size", {.longest_edge = 4 * tile}, false).longest_edge;
    tile_ = c.size("max_image_size", {.longest_edge = tile}, false).longest_edge;
    if (do_resize_ && longest_edge_ <= 0) c.fail("size", "needs 'longest_edge'");
    if (tile_ <= 0) c.fail("max_image_size", "needs 'longest_edge'");
    resample_ = c.resample(Resample::kLanczos);
    norm_ = c.normalization(kHalf, kHalf);
    split_ = c.flag("do_image_splitting", true);
    pad_ = c.flag("do_pad", true);
  }

  std::string_view type() const override {
    return smolvlm_ ? "SmolVLMImageProcessor" : "Idefics3ImageProcessor";
  }

  // _resize_output_size_rescale_to_max_len then _scale_below_upper_bound.
  static std::pair<int, int> longest_edge_size(int height, int width, int max_len) {
    double aspect = static_cast<double>(width) / height;
    if (width >= height) {
      width = max_len;
      height = static_cast<int>(width / aspect);
      if (height % 2) ++height;
    } else {
      height = max_len;
      width = static_cast<int>(height * aspect);
      if (width % 2) ++width;
    }
    height = std::max(height, 1);
    width = std::max(width, 1);
    aspect = static_cast<double>(width) / height;
    if (width >= height && width > kMaxImageSize) {
      width = kMaxImageSize;
      height = static_cast<int>(width / aspect);
    } else if (height > width && height > kMaxImageSize) {
      height = kMaxImageSize;
      width = static_cast<int>(height * aspect);
    }
    return {std::max(height, 1), std::max(width, 1)};
  }

  // resize_for_vision_encoder: both sides up to whole tiles.
  std::pair<int, int> tile_multiple_size(int height, int width) const {
    const double aspect = static_cast<double>(width) / height;
    auto up = [&](double v) { return static_cast<int>(std::ceil(v / tile_)) * tile_; };
    if (width >= height) {
      width = up(width);
      height = up(static_cast<int>(width / aspect));
    } else {
      height = up(height);
      width = up(static_cast<int>(height * aspect));
    }
    return {height, width};
  }

  ProcessorOutput process(const std::vector<Image>& images) const override {
    std::vector<Image> frames;
    ProcessorTensor tile_rows{.name = "rows"}, tile_cols{.name = "cols"};
    for (const Image& input : images) {
      Image image = input;
      if (do_resize_) {
        auto [h, w] = longest_edge_size(image.height, image.width, longest_edge_);
        image = resize(image, w, h, resample_);
      }
      tile_rows.i64.push_back(0);
      tile_cols.i64.push_back(0);
      if (!split_) {
        frames.push_back(resize(image, tile_, tile_, resample_));
        continue;
      }
      auto [h, w] = tile_multiple_size(image.height, image.width);
      image = resize(image, w, h, resample_);
      if (image.height > tile_ || image.width > tile_) {
        const int rows = (image.height - tile_) / tile_ + 1, cols = (image.width - tile_) / tile_ + 1;
        if (int64_t{rows} * cols > kMaxTiles) {
          throw InvalidArgument(label_ + ": max_image_size's longest_edge " + std::to_string(tile_) + " cuts a " +
                                std::to_string(image.width) + "x" + std::to_string(image.height) + " image into " +
                                std::to_string(rows) + " x " + std::to_string(cols) + " tiles, past the limit of " +
                                std::to_string(kMaxTiles));
        }
        for (int r = 0; r < rows; ++r)
          for (int c = 0; c < cols; ++c) frames.push_back(crop(image, c * tile_, r * tile_, tile_, tile_));
        tile_rows.i64.back() = rows;
        tile_cols.i64.back() = cols;
        frames.push_back(resize(image, tile_, tile_, resample_));
      } else {
        frames.push_back(image);
      }
    }
    int max_h = 0, max_w = 0;
    for (const Image& f : frames) {
      max_h = std::max(max_h, f.height);
      max_w = std::max(max_w, f.width);
    }
    if (!pad_) {
      for (const Image& f : frames) {
        if (f.height != max_h || f.width != max_w) {
          throw InvalidArgument(label_ + ": frames of different sizes need do_pad");
        }
      }
    }
    ProcessorTensor pixels{.name = "pixel_values"};
    ProcessorTensor mask{.name = "pixel_attention_mask"};
    const size_t plane = static_cast<size_t>(max_h) * max_w;
    pixels.f32.assign(frames.size() * 3 * plane, 0.0f);
    mask.i64.assign(frames.size() * plane, 0);
    for (size_t i = 0; i < frames.size(); ++i) {
      const Image& f = frames[i];
      const std::vector<float> planes = to_normalized_planes(f, norm_);
      for (int c = 0; c < 3; ++c)
        for (int y = 0; y < f.height; ++y)
          std::copy_n(planes.data() + (static_cast<size_t>(c) * f.height + y) * f.width, f.width,
                      pixels.f32.data() + (i * 3 + c) * plane + static_cast<size_t>(y) * max_w);
      for (int y = 0; y < f.height; ++y)
        std::fill_n(mask.i64.data() + i * plane + static_cast<size_t>(y) * max_w, f.width, 1);
    }
    const int64_t n = static_cast<int64_t>(frames.size());
    pixels.shape = {1, n, 3, max_h, max_w};
    mask.shape = {1, n, max_h, max_w};
    ProcessorOutput out;
    out.tensors.push_back(std::move(pixels));
    if (pad_) out.tensors.push_back(std::move(mask));
    // Each image's tile rows and columns (0, 0: not split), as return_row_col_info gives them.
    tile_rows.shape = tile_cols.shape = {1, static_cast<int64_t>(images.size())};
    out.tensors.push_back(std::move(tile_rows));
    out.tensors.push_back(std::move(tile_cols));
    return out;
  }

 private:
  std::string label_;
  bool smolvlm_ = false;
  bool do_resize_ = true;
  int longest_edge_ = 0, tile_ = 0;
  Resample resample_ = Resample::kLanczos;
  Normalization norm_;
  bool split_ = true, pad_ = true;
};

}  // namespace

std::unique_ptr<ImageProcessor> make_idefics3_processor(const ConfigReader& config, bool smolvlm) {
  return std::make_unique<Idefics3Processor>(config, smolvlm);
}

}  // namespace lmx::vision::detail
