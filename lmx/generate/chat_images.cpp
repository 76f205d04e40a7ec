#include "lmx/generate/chat_images.h"

#include <algorithm>
#include <string>

#include "lmx/base/error.h"

namespace lmx::generate {

namespace {

constexpr uint64_t kFnvOffset = 1469598103934665603ull;

// FNV-1a over an image's size and bytes, from `h`.
uint64_t mix_image(uint64_t h, const vision::Image& image) {
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

}  // namespace

uint64_t image_hash(const vision::Image& image) { return mix_image(kFnvOffset, image); }

uint64_t video_hash(const vision::Video& video) {
  uint64_t h = kFnvOffset ^ 0x766964656fULL;  // "video": not the hash of its first frame alone
  for (const vision::Image& frame : video.frames) h = mix_image(h, frame);
  return h;
}

ExpandedPrompt expand_chat_images(const models::vlm::VisionLanguageModel& model, const std::vector<int32_t>& ids,
                                  const std::vector<ChatImage>& images, const tokenizer::Tokenizer& tok) {
  const auto marker = static_cast<int32_t>(model.prompt_image_marker());
  const int64_t video_marker = model.video_token_id();
  std::vector<size_t> image_items, video_items;
  for (size_t i = 0; i < images.size(); ++i) (images[i].is_video() ? video_items : image_items).push_back(i);
  const size_t markers = static_cast<size_t>(std::count(ids.begin(), ids.end(), marker));
  if (markers != image_items.size()) {
    throw InvalidArgument(model.model_type() + ": the chat template wrote " + std::to_string(markers) +
                          " image markers for the conversation's " + std::to_string(image_items.size()) + " images");
  }
  const size_t video_markers =
      video_marker < 0 ? 0 : static_cast<size_t>(std::count(ids.begin(), ids.end(), static_cast<int32_t>(video_marker)));
  if (video_markers != video_items.size()) {
    throw InvalidArgument(model.model_type() + ": the chat template wrote " + std::to_string(video_markers) +
                          " video markers for the conversation's " + std::to_string(video_items.size()) + " videos");
  }
  const auto [wrap_start, wrap_end] = model.video_marker_wrapping();
  ExpandedPrompt out;
  size_t image = 0, video = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    const bool is_video = video_marker >= 0 && id == video_marker;
    if (id != marker && !is_video) {
      out.tokens.push_back(id);
      out.identity.push_back(id);
      continue;
    }
    const size_t item = is_video ? video_items[video++] : image_items[image++];
    const ChatImage& ci = images[item];
    std::vector<int32_t> piece;
    if (is_video) {
      piece = model.video_prompt(ci.inputs, 0, tok);
      // The wrapping the prompt repeats around the marker is part of the video's piece
      // (as expand_image_prompt does).
      if (wrap_start >= 0 && !out.tokens.empty() && out.tokens.back() == wrap_start && i + 1 < ids.size() &&
          ids[i + 1] == wrap_end) {
        out.tokens.pop_back();
        out.identity.pop_back();
        ++i;
      }
    } else {
      piece = model.image_prompt(ci.inputs, 0, tok);
    }
    const auto tag = static_cast<int32_t>(-1 - static_cast<int64_t>(ci.hash & 0x3fffffff));
    const int64_t placeholder = is_video ? video_marker : model.image_token_id();
    out.spans.emplace_back(out.tokens.size(), out.tokens.size() + piece.size());
    out.items.push_back(item);
    for (int32_t t : piece) {
      out.tokens.push_back(t);
      out.identity.push_back(t == placeholder ? tag : t);
    }
  }
  return out;
}

}  // namespace lmx::generate
