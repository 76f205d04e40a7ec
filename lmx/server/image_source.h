// The images of a chat request (its image_url parts) decoded and run through the model's
// image processor. Sources: base64 data: URLs (PNG, JPEG, WebP, GIF); files only under
// the directory the server allows (ServerOptions::image_dir, absolute paths or file://
// URLs, symbolic links resolved before the check); http(s) URLs are refused (the server
// works offline and fetches nothing). Every refusal is an ApiError 400 naming the part.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "lmx/generate/chat_images.h"
#include "lmx/server/chat_messages.h"
#include "lmx/vision/image_processor.h"

namespace lmx::server {

struct ImageSourceLimits {
  size_t max_images = 8;                  // per request
  int64_t max_pixels = int64_t{1} << 24;  // per image (width x height), checked before decoding
  int64_t max_bytes = int64_t{64} << 20;  // encoded bytes of one image
  std::filesystem::path image_dir;        // empty: no file images
};

struct RequestImages {
  // Each image's hash and the processor's outputs for it alone (placeholder counts; the
  // pixels themselves are not kept).
  std::vector<generate::ChatImage> images;
  models::vlm::ImageInputs inputs;  // the processor's outputs for all of them, in order
};

RequestImages load_request_images(const std::vector<ImagePart>& parts, const vision::ImageProcessor& processor,
                                  const ImageSourceLimits& limits);

}  // namespace lmx::server
