#include "lmx/generate/chat_images.h"

#include <algorithm>
#include <string>

#include "lmx/base/error.h"

namespace lmx::generate {

uint64_t image_hash(const vision::Image& image) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  auto mix = [&h](uint8_t b) {
    h ^= b;
    h *= 1099511628211ull;
  };
  for (int v : {image.width, image.height}) {
    for (int i = 0; i < 4; ++i) mix(static_cast<uint8_t>(v >> (8 * i)));
  }
  for (uint8_t b : image.rgb) mix(b);
  return h;
}

ExpandedPrompt expand_chat_images(const models::vlm::VisionLanguageModel& model, const std::vector<int32_t>& ids,
                                  const std::vector<ChatImage>& images, const tokenizer::Tokenizer& tok) {
  const auto marker = static_cast<int32_t>(model.prompt_image_marker());
  const size_t markers = static_cast<size_t>(std::count(ids.begin(), ids.end(), marker));
  if (markers != images.size()) {
    throw InvalidArgument(model.model_type() + ": the chat template wrote " + std::to_string(markers) +
                          " image markers for the conversation's " + std::to_string(images.size()) + " images");
  }
  ExpandedPrompt out;
  size_t image = 0;
  for (int32_t id : ids) {
    if (id != marker) {
      out.tokens.push_back(id);
      out.identity.push_back(id);
      continue;
    }
    const ChatImage& ci = images[image++];
    const std::vector<int32_t> piece = model.image_prompt(ci.inputs, 0, tok);
    const auto tag = static_cast<int32_t>(-1 - static_cast<int64_t>(ci.hash & 0x3fffffff));
    out.spans.emplace_back(out.tokens.size(), out.tokens.size() + piece.size());
    for (int32_t t : piece) {
      out.tokens.push_back(t);
      out.identity.push_back(t == model.image_token_id() ? tag : t);
    }
  }
  return out;
}

}  // namespace lmx::generate
