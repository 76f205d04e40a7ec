// Qwen2-VL's video processor (Qwen2-VL, Qwen2.5-VL): each video's sampled frames, padded
// to whole temporal patches with copies of the last, resized by smart_resize (one size per
// video, from its first frame) with torchvision's uint8 fixed point (transformers' video
// processors resize with torchvision), normalized and cut into patches (qwen_patches.h).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "lmx/base/error.h"
#include "lmx/base/json_nesting.h"
#include "lmx/vision/image_ops.h"
#include "lmx/vision/processor_config.h"
#include "lmx/vision/qwen_patches.h"
#include "lmx/vision/resample.h"
#include "lmx/vision/video_processor.h"

namespace lmx::vision {
namespace {

// Qwen2VLVideoProcessor and Qwen3VLVideoProcessor: the same steps; Qwen3-VL samples by
// default (2 fps, linspace), counts the frames in its pixel budget, upscales frames
// smaller than a merged patch first, and states timestamps.
class QwenVideoProcessor : public VideoProcessor {
 public:
  QwenVideoProcessor(const detail::ConfigReader& c, bool qwen3) : label_(c.label()), qwen3_(qwen3) {
    // The classes' defaults; min_pixels / max_pixels override size.
    const int unit = qwen3 ? 32 * 32 : 28 * 28;  // size fields are int
    detail::SizeDict size = c.size("size", {.shortest_edge = 128 * unit, .longest_edge = 768 * unit}, false);
    min_pixels_ = c.integer64("min_pixels", size.shortest_edge);
    max_pixels_ = c.integer64("max_pixels", size.longest_edge);
    if (min_pixels_ <= 0 || max_pixels_ <= 0) c.fail("size", "needs 'shortest_edge' and 'longest_edge' (min / max pixels)");
    do_resize_ = c.flag("do_resize", true);
    resample_ = c.resample(Resample::kBicubic);
    norm_ = qwen3 ? c.normalization({0.5, 0.5, 0.5}, {0.5, 0.5, 0.5}) : c.normalization(detail::kClipMean, detail::kClipStd);
    table_ = normalization_table(norm_);
    patch_ = c.integer("patch_size", qwen3 ? 16 : 14);
    temporal_ = c.integer("temporal_patch_size", 2);
    merge_ = c.integer("merge_size", 2);
    if (patch_ <= 0 || temporal_ <= 0 || merge_ <= 0) c.fail("patch_size", "and merge sizes must be positive");
    min_frames_ = c.integer64("min_frames", 4);
    max_frames_ = c.integer64("max_frames", 768);
    do_sample_ = c.flag("do_sample_frames", qwen3);
    fps_ = c.number("fps", 2.0);
    cap_per_frame_ = c.flag("cap_pixels_per_frame", false);
  }

  std::string_view type() const override { return qwen3_ ? "Qwen3VLVideoProcessor" : "Qwen2VLVideoProcessor"; }

  std::vector<double> timestamps(const Video& v) const override {
    if (!qwen3_) return {};
    return qwen3_vl_timestamps(v.indices, v.info.fps > 0 ? v.info.fps : 24.0, merge_);
  }
  int temporal_patch_size() const override { return temporal_; }

  std::vector<int64_t> frame_indices(const VideoInfo& info, const FrameSampling& sampling,
                                     const std::string& source) const override {
    FrameSampling s = sampling;
    if (s.fps <= 0 && s.num_frames <= 0 && do_sample_) s.fps = fps_;
    if (qwen3_) return qwen3_vl_frame_indices(info.frames, info.fps, s, min_frames_, max_frames_, source);
    return qwen2_vl_frame_indices(info.frames, info.fps, s, temporal_, min_frames_, max_frames_, source);
  }

  ProcessorOutput process(const std::vector<Video>& videos) const override {
    ProcessorTensor pixels{.name = "pixel_values_videos"};
    ProcessorTensor grid{.name = "video_grid_thw"};
    int64_t rows = 0;
    for (const Video& video : videos) {
      if (video.frames.empty()) throw InvalidArgument(video.source + ": no frames to process");
      const Image& first = video.frames.front();
      int h = first.height, w = first.width;
      if (do_resize_) std::tie(h, w) = target_size(video);
      if (h % (patch_ * merge_) || w % (patch_ * merge_)) {
        throw InvalidArgument(label_ + ": " + video.source + ": " + std::to_string(w) + "x" + std::to_string(h) +
                              " frames are not made of whole merged patches (do_resize is off)");
      }
      std::vector<Image> resized;
      for (const Image& f : video.frames) {
        if (f.width != first.width || f.height != first.height) {
          throw InvalidArgument(video.source + ": frames of different sizes");
        }
        resized.push_back(do_resize_ ? resize(f, w, h, resample_, FixedPoint::kTorchUint8) : f);
      }
      // Whole temporal patches: the last frame repeated.
      std::vector<const Image*> frames;
      for (const Image& f : resized) frames.push_back(&f);
      while (frames.size() % static_cast<size_t>(temporal_)) frames.push_back(&resized.back());
      const std::vector<int64_t> thw = detail::append_qwen_patches(pixels, frames, table_, temporal_, patch_, merge_);
      rows += thw[0] * thw[1] * thw[2];
      grid.i64.insert(grid.i64.end(), thw.begin(), thw.end());
    }
    pixels.shape = {rows, 3LL * temporal_ * patch_ * patch_};
    grid.shape = {static_cast<int64_t>(videos.size()), 3};
    ProcessorOutput out;
    out.tensors.push_back(std::move(pixels));
    out.tensors.push_back(std::move(grid));
    return out;
  }

 private:
  // The frames' size: smart_resize (Qwen3-VL: the frames count in the budget).
  std::pair<int, int> target_size(const Video& video) const {
    const Image& first = video.frames.front();
    const int factor = patch_ * merge_;
    if (!qwen3_) return detail::qwen_smart_resize(first.height, first.width, factor, min_pixels_, max_pixels_, video.source);
    const auto frames = static_cast<int64_t>(video.frames.size());
    if (frames < temporal_) {
      throw InvalidArgument(video.source + ": Qwen3-VL needs at least " + std::to_string(temporal_) + " frames, got " +
                            std::to_string(frames));
    }
    int64_t max_pixels = max_pixels_;
    if (cap_per_frame_) {
      const int64_t per_frame = std::max(std::min<int64_t>(768LL * factor * factor, max_pixels_ / frames),
                                         static_cast<int64_t>(static_cast<double>(min_pixels_) * 1.05));
      max_pixels = per_frame * frames;
    }
    double height = first.height, width = first.width;
    if (height < factor || width < factor) {
      const double scale = std::max(factor / height, factor / width);
      height = std::floor(height * scale);
      width = std::floor(width * scale);
    }
    if (std::max(height, width) / std::min(height, width) > 200) {
      throw InvalidArgument(video.source + ": Qwen3-VL takes frames with an aspect ratio up to 200");
    }
    auto round_to = [](double v, int f) { return static_cast<int64_t>(std::nearbyint(v / f)) * f; };
    int64_t h = round_to(height, factor), w = round_to(width, factor);
    const int64_t t = round_to(static_cast<double>(frames), temporal_);
    const double volume = static_cast<double>(frames) * height * width;
    if (t * h * w > max_pixels) {
      const double beta = std::sqrt(volume / static_cast<double>(max_pixels));
      h = std::max<int64_t>(factor, static_cast<int64_t>(std::floor(height / beta / factor)) * factor);
      w = std::max<int64_t>(factor, static_cast<int64_t>(std::floor(width / beta / factor)) * factor);
    } else if (t * h * w < min_pixels_) {
      const double beta = std::sqrt(static_cast<double>(min_pixels_) / volume);
      h = static_cast<int64_t>(std::ceil(height * beta / factor)) * factor;
      w = static_cast<int64_t>(std::ceil(width * beta / factor)) * factor;
    }
    return {static_cast<int>(h), static_cast<int>(w)};
  }

  std::string label_;
  bool qwen3_ = false;
  bool cap_per_frame_ = false;
  int64_t min_pixels_ = 0, max_pixels_ = 0, min_frames_ = 4, max_frames_ = 768;
  bool do_resize_ = true, do_sample_ = false;
  double fps_ = 0;
  Resample resample_ = Resample::kBicubic;
  Normalization norm_;
  NormalizationTable table_{};
  int patch_ = 14, temporal_ = 2, merge_ = 2;
};

}  // namespace

std::unique_ptr<VideoProcessor> make_video_processor(std::string_view json_text, const std::string& label) {
  check_json_nesting(json_text, label);
  const nlohmann::json doc = nlohmann::json::parse(json_text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) throw FormatError(label + ": not a JSON object");
  std::string type;
  for (const char* key : {"video_processor_type", "image_processor_type"}) {
    if (auto it = doc.find(key); it != doc.end() && it->is_string()) {
      type = it->get<std::string>();
      break;
    }
  }
  if (type.starts_with("Qwen2VL") || type.starts_with("Qwen2_5_VL")) {
    return std::make_unique<QwenVideoProcessor>(detail::ConfigReader(doc, label), false);
  }
  if (type.starts_with("Qwen3VL")) return std::make_unique<QwenVideoProcessor>(detail::ConfigReader(doc, label), true);
  throw Unsupported(label + ": no video processor for '" + (type.empty() ? "(no processor type)" : type) +
                    "' (supported: Qwen2VLVideoProcessor, Qwen3VLVideoProcessor)");
}

std::unique_ptr<VideoProcessor> load_video_processor(const std::filesystem::path& path) {
  std::filesystem::path file = path;
  if (std::filesystem::is_directory(path)) {
    file = path / "video_preprocessor_config.json";
    if (!std::filesystem::exists(file)) file = path / "preprocessor_config.json";
    if (!std::filesystem::exists(file)) {
      throw IoError(path.string() + ": no video_preprocessor_config.json or preprocessor_config.json");
    }
  }
  return make_video_processor(detail::read_config_text(file), file.string());
}

std::vector<double> seconds_per_grid(const std::vector<Video>& videos, const VideoProcessor& processor) {
  std::vector<double> out;
  for (const Video& v : videos) {
    // transformers' VideoMetadata.sampled_fps: kept / total x fps (24 without a rate).
    const double fps = v.info.fps > 0 && v.info.frames > 0
                           ? static_cast<double>(v.frames.size()) / static_cast<double>(v.info.frames) * v.info.fps
                           : 24.0;
    out.push_back(processor.temporal_patch_size() / fps);
  }
  return out;
}

Video load_sampled_video(const std::filesystem::path& path, const VideoProcessor& processor,
                         const FrameSampling& sampling, const VideoLimits& limits) {
  return load_video(
      path, [&](const VideoInfo& info) { return processor.frame_indices(info, sampling, path.string()); }, limits);
}

}  // namespace lmx::vision
