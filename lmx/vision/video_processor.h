// Video processors: transformers' Qwen2-VL video processor (Qwen2-VL, Qwen2.5-VL), its frame
// sampling, and the cut of the sampled frames into patches (pixel_values_videos,
// video_grid_thw). transformers' video processors resize with torchvision (no Pillow
// class): lmx resizes the frames with the same weights in torch's uint8 fixed point
// (resample.h: FixedPoint::kTorchUint8); docs/vision.md, Video, says what was measured.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lmx/vision/image_processor.h"
#include "lmx/vision/video_decode.h"

namespace lmx::vision {

// How to sample a video's frames: at most one of the two; neither: the processor's
// config (its fps when do_sample_frames, else every frame).
struct FrameSampling {
  double fps = 0;          // frames per second of video
  int64_t num_frames = 0;  // this many frames (rounded to whole temporal patches)
};

// Qwen2-VL's sample_frames: the indices kept of `total` frames at `video_fps`, for
// `fps` (n = total / video_fps * fps within [min_frames, min(max_frames, total)], down to
// a multiple of frame_factor) or `num_frames` (rounded half to even to a multiple of
// frame_factor); then arange(0, total, total / n) truncated, as torch computes it.
// lmx::InvalidArgument naming `source` when no frame or more frames than the video has
// would be taken.
std::vector<int64_t> qwen2_vl_frame_indices(int64_t total, double video_fps, const FrameSampling& sampling,
                                            int frame_factor, int64_t min_frames, int64_t max_frames,
                                            const std::string& source);

// Qwen3-VL's sample_frames: n = int(total / video_fps x fps) within [min_frames,
// min(max_frames, total)] (or `num_frames` as given; neither: all frames within
// [min_frames, max_frames]), then numpy's linspace(0, total - 1, n) rounded half to even
// (a frame may repeat when n > total).
std::vector<int64_t> qwen3_vl_frame_indices(int64_t total, double video_fps, const FrameSampling& sampling,
                                            int64_t min_frames, int64_t max_frames, const std::string& source);

// Qwen3-VL's timestamp (seconds) of each temporal patch: the indices padded with the last
// to a multiple of `merge`, each group the mean of its first and last frame's time.
std::vector<double> qwen3_vl_timestamps(const std::vector<int64_t>& indices, double video_fps, int merge);

class VideoProcessor {
 public:
  virtual ~VideoProcessor() = default;
  virtual std::string_view type() const = 0;
  // The frame indices to keep of a video (all frames when the config does not sample).
  virtual std::vector<int64_t> frame_indices(const VideoInfo& info, const FrameSampling& sampling,
                                             const std::string& source) const = 0;
  // The sampled frames of each video -> pixel_values_videos [patches, values],
  // video_grid_thw [videos, 3].
  virtual ProcessorOutput process(const std::vector<Video>& videos) const = 0;
  virtual int temporal_patch_size() const = 0;
  // Per video: the seconds of each temporal patch a prompt states (Qwen3-VL), else empty.
  virtual std::vector<double> timestamps(const Video&) const { return {}; }
};

// From a video_preprocessor_config.json (Qwen2VLVideoProcessor, Qwen3VLVideoProcessor) or a
// preprocessor_config.json's keys (a Qwen2-VL image processor implies its video
// processor). lmx::Unsupported for other families.
std::unique_ptr<VideoProcessor> make_video_processor(std::string_view json_text, const std::string& label);
// A config file, or a model folder (video_preprocessor_config.json, else preprocessor_config.json).
std::unique_ptr<VideoProcessor> load_video_processor(const std::filesystem::path& path);

// Qwen2.5-VL's second_per_grid_ts of each video: temporal_patch_size / the sampled frame
// rate (kept frames / all frames x the video's fps), as transformers 5's Qwen2_5_VLProcessor.
std::vector<double> seconds_per_grid(const std::vector<Video>& videos, const VideoProcessor& processor);

// Decodes the frames `processor` samples from the file (load_video's errors).
Video load_sampled_video(const std::filesystem::path& path, const VideoProcessor& processor,
                         const FrameSampling& sampling, const VideoLimits& limits = {});

}  // namespace lmx::vision
