// Images in a ChatSession (vision-language models): each image of the history with its
// content hash and its processor outputs, and the transcript's token ids with each image
// marker expanded. Besides the tokens, an "identity" of each position: the token, or for
// an image placeholder a negative value from its image's hash, so that the KV cache is
// reused across turns only up to the first image whose pixels differ.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "lmx/models/vlm/vision_language_model.h"
#include "lmx/vision/image.h"

namespace lmx::generate {

struct ChatImage {
  vision::Image image;
  uint64_t hash = 0;                  // of the size and the RGB bytes
  models::vlm::ImageInputs inputs{};  // the processor's outputs for this image alone
};

uint64_t image_hash(const vision::Image& image);

struct ExpandedPrompt {
  std::vector<int32_t> tokens;
  std::vector<int32_t> identity;
  std::vector<std::pair<size_t, size_t>> spans;  // [begin, end) of each image's expansion
};

// lmx::InvalidArgument when the markers and the images differ in number.
ExpandedPrompt expand_chat_images(const models::vlm::VisionLanguageModel& model, const std::vector<int32_t>& ids,
                                  const std::vector<ChatImage>& images, const tokenizer::Tokenizer& tok);

}  // namespace lmx::generate
