// Frame sampling rules of transformers' video processors (lmx/vision/video_processor.h).
#include <algorithm>
#include <cmath>
#include <string>

#include "lmx/base/error.h"
#include "lmx/vision/video_processor.h"

namespace lmx::vision {

std::vector<int64_t> qwen2_vl_frame_indices(int64_t total, double video_fps, const FrameSampling& sampling,
                                            int frame_factor, int64_t min_frames, int64_t max_frames,
                                            const std::string& source) {
  if (sampling.fps > 0 && sampling.num_frames > 0) {
    throw InvalidArgument(source + ": sample either at an fps or to a number of frames, not both");
  }
  double n = static_cast<double>(total);
  if (sampling.num_frames > 0) {
    n = std::nearbyint(static_cast<double>(sampling.num_frames) / frame_factor) * frame_factor;
  } else if (sampling.fps > 0) {
    if (!(video_fps > 0)) throw InvalidArgument(source + ": the video has no frame rate, so it cannot be sampled at an fps");
    const double cap = std::floor(static_cast<double>(std::min(max_frames, total)) / frame_factor) * frame_factor;
    n = static_cast<double>(total) / video_fps * sampling.fps;
    n = std::min({std::max(n, static_cast<double>(min_frames)), cap, static_cast<double>(total)});
    n = std::floor(n / frame_factor) * frame_factor;
  } else {
    std::vector<int64_t> all(static_cast<size_t>(total));
    for (int64_t i = 0; i < total; ++i) all[static_cast<size_t>(i)] = i;
    return all;
  }
  if (n > static_cast<double>(total)) {
    throw InvalidArgument(source + ": cannot sample " + std::to_string(static_cast<int64_t>(n)) + " frames of a video of " +
                          std::to_string(total));
  }
  if (n < 1) {
    throw InvalidArgument(source + ": sampling keeps no frame of a video of " + std::to_string(total) +
                          " (frames are taken in groups of " + std::to_string(frame_factor) + ")");
  }
  // torch.arange(0, total, step).int(): ceil(total / step) values start + i * step,
  // computed in double, stored as float32, truncated.
  const double step = static_cast<double>(total) / n;
  const auto count = static_cast<int64_t>(std::ceil(static_cast<double>(total) / step));
  std::vector<int64_t> out;
  for (int64_t i = 0; i < count; ++i) {
    out.push_back(static_cast<int64_t>(static_cast<float>(static_cast<double>(i) * step)));
  }
  return out;
}

std::vector<int64_t> qwen3_vl_frame_indices(int64_t total, double video_fps, const FrameSampling& sampling,
                                            int64_t min_frames, int64_t max_frames, const std::string& source) {
  if (sampling.fps > 0 && sampling.num_frames > 0) {
    throw InvalidArgument(source + ": sample either at an fps or to a number of frames, not both");
  }
  int64_t n = sampling.num_frames;
  if (n <= 0 && sampling.fps > 0) {
    const double rate = video_fps > 0 ? video_fps : 24.0;  // transformers assumes 24 without a rate
    n = static_cast<int64_t>(static_cast<double>(total) / rate * sampling.fps);
    n = std::min({std::max(n, min_frames), max_frames, total});
  }
  if (n <= 0) n = std::min(std::max(total, min_frames), max_frames);
  if (n > 4 * total + 16) {
    throw InvalidArgument(source + ": cannot sample " + std::to_string(n) + " frames of a video of " + std::to_string(total));
  }
  // numpy.linspace: start + i * step (the last exactly the end), then round half to even.
  std::vector<int64_t> out(static_cast<size_t>(n));
  const double stop = static_cast<double>(total - 1), step = n > 1 ? stop / static_cast<double>(n - 1) : 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = i + 1 == n && n > 1 ? stop : static_cast<double>(i) * step;
    out[static_cast<size_t>(i)] = static_cast<int64_t>(std::nearbyint(v));
  }
  return out;
}

std::vector<double> qwen3_vl_timestamps(const std::vector<int64_t>& indices, double video_fps, int merge) {
  std::vector<int64_t> idx = indices;
  while (!idx.empty() && idx.size() % static_cast<size_t>(merge)) idx.push_back(idx.back());
  std::vector<double> out;
  for (size_t i = 0; i + static_cast<size_t>(merge) <= idx.size(); i += static_cast<size_t>(merge)) {
    out.push_back((static_cast<double>(idx[i]) / video_fps + static_cast<double>(idx[i + merge - 1]) / video_fps) / 2);
  }
  return out;
}

}  // namespace lmx::vision
