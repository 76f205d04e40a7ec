// load_video in a build without FFmpeg's libraries.
#include "lmx/base/error.h"
#include "lmx/vision/video_decode.h"

namespace lmx::vision {

bool video_support() { return false; }

Video load_video(const std::filesystem::path& path, const FrameSelector&, const VideoLimits&) {
  throw Unsupported(path.string() + ": lmx was built without video support (FFmpeg's libavformat, "
                    "libavcodec and libswscale: Debian libavformat-dev libavcodec-dev libswscale-dev)");
}

}  // namespace lmx::vision
