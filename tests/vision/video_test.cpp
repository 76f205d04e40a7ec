// Video decoding against the ffmpeg CLI's rgb24 frames, bad input, and Qwen2-VL's frame
// sampling (tests/data/vision/video; tools/fixtures/make_video_clips.sh made them).
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/vision/video_decode.h"
#include "lmx/vision/video_processor.h"
#include "vision_test_util.h"

namespace lmx::vision {
namespace {

using testing::vision_data;

nlohmann::json clips() {
  std::ifstream in(vision_data("video/videos.json"));
  return nlohmann::json::parse(in);
}

// Frame i of the ffmpeg CLI's rgb24 output of a clip.
Image cli_frame(const std::string& name, int width, int height, int64_t index) {
  std::ifstream in(vision_data("video/frames/" + name + ".rgb"), std::ios::binary);
  const std::vector<char> raw{std::istreambuf_iterator<char>(in), {}};
  Image img = make_image(width, height);
  const size_t size = img.rgb.size();
  EXPECT_GE(raw.size(), (static_cast<size_t>(index) + 1) * size);
  std::copy_n(reinterpret_cast<const uint8_t*>(raw.data()) + static_cast<size_t>(index) * size, size, img.rgb.data());
  return img;
}

template <typename E>
void expect_error(const std::string& file, const std::string& words) {
  try {
    load_video(vision_data("video/" + file));
    ADD_FAILURE() << file << ": no error";
  } catch (const E& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(file), std::string::npos) << msg;
    EXPECT_NE(msg.find(words), std::string::npos) << msg;
  }
}

class Video_ : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!video_support()) GTEST_SKIP() << "built without video support";
  }
};

TEST_F(Video_, FramesEqualTheFfmpegCli) {
  const nlohmann::json all = clips();
  for (auto it = all.begin(); it != all.end(); ++it) {
    const std::string name = it.key();
    const nlohmann::json& c = it.value();
    const Video v = load_video(vision_data("video/" + c["file"].get<std::string>()));
    const int w = c["width"], h = c["height"];
    ASSERT_EQ(v.info.frames, c["frames"].get<int64_t>()) << name;
    EXPECT_EQ(v.info.width, w);
    EXPECT_EQ(v.info.height, h);
    EXPECT_DOUBLE_EQ(v.info.fps, c["fps"].get<double>()) << name;
    ASSERT_EQ(v.frames.size(), static_cast<size_t>(v.info.frames));
    for (size_t i = 0; i < v.frames.size(); ++i) {
      EXPECT_EQ(v.indices[i], static_cast<int64_t>(i));
      EXPECT_TRUE(testing::same_pixels(v.frames[i], cli_frame(name, w, h, static_cast<int64_t>(i))))
          << name << " frame " << i;
    }
  }
}

TEST_F(Video_, KeepsOnlySelectedFrames) {
  // B-frames: decode order differs from display order; indices count in display order.
  const Video v = load_video(vision_data("video/clip_h264_64x36.mp4"),
                             [](const VideoInfo&) { return std::vector<int64_t>{1, 4, 9}; });
  ASSERT_EQ(v.frames.size(), 3u);
  EXPECT_EQ(v.indices, (std::vector<int64_t>{1, 4, 9}));
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(testing::same_pixels(v.frames[i], cli_frame("clip_h264_64x36", 64, 36, v.indices[i])));
  }
  EXPECT_THROW(load_video(vision_data("video/clip_h264_64x36.mp4"),
                          [](const VideoInfo&) { return std::vector<int64_t>{3, 2}; }),
               InvalidArgument);
  EXPECT_THROW(load_video(vision_data("video/clip_h264_64x36.mp4"),
                          [](const VideoInfo&) { return std::vector<int64_t>{10}; }),
               InvalidArgument);
}

TEST_F(Video_, BadInputNamesTheFile) {
  expect_error<InvalidArgument>("no_video.wav", "no video stream");
  expect_error<FormatError>("truncated.mp4", "not a video");
  expect_error<InvalidArgument>("huge_dims.y4m", "16000x12000 frames exceed");
  expect_error<FormatError>("videos.json", "not a video");
  expect_error<IoError>("missing.mp4", "cannot open");
  // The limits on kept frames are checked before decoding.
  VideoLimits few{.max_frames = 3};
  EXPECT_THROW(load_video(vision_data("video/clip_h264_64x36.mp4"), {}, few), InvalidArgument);
  VideoLimits small{.max_bytes = 64 * 36 * 3 * 4};
  EXPECT_THROW(load_video(vision_data("video/clip_h264_64x36.mp4"), {}, small), InvalidArgument);
}

TEST(VideoSampling, Qwen2VLRules) {
  // fps: 7 frames at 23.976 fps, 2 per second -> 0.58 -> at least min_frames 4.
  EXPECT_EQ(qwen2_vl_frame_indices(7, 24000.0 / 1001, {.fps = 2}, 2, 4, 768, "v"),
            (std::vector<int64_t>{0, 1, 3, 5}));
  // num_frames: arange(0, 10, 2.5) -> 0 2 5 7.
  EXPECT_EQ(qwen2_vl_frame_indices(10, 5, {.num_frames = 4}, 2, 4, 768, "v"), (std::vector<int64_t>{0, 2, 5, 7}));
  // 5 rounds half to even: 2.5 -> 2 groups of 2.
  EXPECT_EQ(qwen2_vl_frame_indices(10, 5, {.num_frames = 5}, 2, 4, 768, "v"), (std::vector<int64_t>{0, 2, 5, 7}));
  // Neither: every frame.
  EXPECT_EQ(qwen2_vl_frame_indices(3, 5, {}, 2, 4, 768, "v").size(), 3u);
  EXPECT_THROW(qwen2_vl_frame_indices(3, 5, {.num_frames = 6}, 2, 4, 768, "v"), InvalidArgument);
  EXPECT_THROW(qwen2_vl_frame_indices(1, 5, {.fps = 2}, 2, 4, 768, "v"), InvalidArgument);
  EXPECT_THROW(qwen2_vl_frame_indices(10, 5, {.fps = 2, .num_frames = 4}, 2, 4, 768, "v"), InvalidArgument);
}

}  // namespace
}  // namespace lmx::vision
