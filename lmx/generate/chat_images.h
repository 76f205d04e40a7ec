// Images and videos in a ChatSession (vision-language models): each image or video of the
// history with its content hash and its processor outputs, and the transcript's token ids
// with each image and video marker expanded. Besides the tokens, an "identity" of each position: the token, or for
// an image placeholder a negative value from its image's hash, so that the KV cache is
// reused across turns only up to the first image whose pixels differ.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "lmx/models/vlm/vision_language_model.h"
#include "lmx/vision/image.h"
#include "lmx/vision/video_decode.h"

namespace lmx::generate {

struct ChatImage {
  vision::Image image;                 // an image (empty for a video)
  uint64_t hash = 0;                   // of the size and the RGB bytes (of every frame)
  models::vlm::ImageInputs inputs{};   // the processor's outputs for this image (video) alone
  std::optional<vision::Video> video;  // a video: its sampled frames
  bool is_video() const { return video.has_value(); }
};

uint64_t image_hash(const vision::Image& image);
uint64_t video_hash(const vision::Video& video);

struct ExpandedPrompt {
  std::vector<int32_t> tokens;
  std::vector<int32_t> identity;
  std::vector<std::pair<size_t, size_t>> spans;  // [begin, end) of each image's (video's) expansion
  std::vector<size_t> items;                      // the entry of `images` each span expands
};

// Image markers take the images of `images` in order, video markers its videos.
// lmx::InvalidArgument when the markers and the images (videos) differ in number.
ExpandedPrompt expand_chat_images(const models::vlm::VisionLanguageModel& model, const std::vector<int32_t>& ids,
                                  const std::vector<ChatImage>& images, const tokenizer::Tokenizer& tok);

}  // namespace lmx::generate
