// Video files to 8-bit RGB frames (FFmpeg's libavformat / libavcodec / libswscale,
// Debian's libav*-dev; built without them, load_video throws lmx::Unsupported). Frames
// are converted as the `ffmpeg` CLI converts them to rgb24 (swscale, bicubic, the
// frame's colour matrix and range), so lmx's frames equal `ffmpeg -i F -pix_fmt rgb24`'s.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "lmx/vision/image.h"

namespace lmx::vision {

struct VideoInfo {
  int width = 0, height = 0;
  int64_t frames = 0;  // packets of the video stream (each a frame for the codecs read here)
  double fps = 0;      // the stream's average frame rate (else its base rate)
};

struct VideoLimits {
  // A frame over this many pixels is refused from the header (DecodeLimits' value).
  int64_t max_pixels = kMaxImagePixels;
  // Frames kept (after sampling) and their total bytes: refused before decoding.
  int64_t max_frames = 4096;
  int64_t max_bytes = 4LL << 30;
};

struct Video {
  std::vector<Image> frames;     // the kept frames, in display order
  std::vector<int64_t> indices;  // their indices among all frames
  VideoInfo info;
  std::string source;
};

// Which frame indices (non-decreasing, within [0, info.frames); a repeated index keeps the
// frame again) to keep; empty function: all.
using FrameSelector = std::function<std::vector<int64_t>(const VideoInfo&)>;

// Errors name the file: lmx::IoError (cannot open), lmx::InvalidArgument (no video
// stream, no frames, a frame too large, more frames than the limits), lmx::FormatError
// (data FFmpeg cannot read or decode), lmx::Unsupported (built without video support).
Video load_video(const std::filesystem::path& path, const FrameSelector& select = {},
                 const VideoLimits& limits = {});

// Whether this build reads videos.
bool video_support();

}  // namespace lmx::vision
