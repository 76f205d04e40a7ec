// Decoding PNG, JPEG, WebP and GIF (first frame) into 8-bit RGB, with the EXIF orientation
// applied and every colour mode converted the way Pillow's `convert("RGB")` does
// (docs/vision.md lists the rules). Errors name the file (or the label given for bytes).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "lmx/vision/image.h"

namespace lmx::vision {

struct DecodeLimits {
  // Refused before any pixel is decoded: Pillow raises its DecompressionBombError at
  // twice its MAX_IMAGE_PIXELS (89,478,485), and so do we.
  int64_t max_pixels = kMaxImagePixels;
  // Encoded input larger than this is refused before it is read.
  int64_t max_bytes = 512LL << 20;
};

// The container format found from the first bytes ("png", "jpeg", "webp", "gif"), or "".
std::string_view sniff_image_format(std::span<const uint8_t> bytes);

// Decodes encoded bytes; `label` names the source in errors (a path, "data URL", ...).
// lmx::FormatError for bytes that are not a supported image or are damaged,
// lmx::InvalidArgument for an image over the limits.
Image decode_image(std::span<const uint8_t> bytes, const std::string& label,
                   const DecodeLimits& limits = {});

// Reads and decodes a file (lmx::IoError when it cannot be read).
Image load_image_file(const std::filesystem::path& path, const DecodeLimits& limits = {});

// Decodes `data:image/...;base64,...` (lmx::FormatError naming the URL's start otherwise).
Image decode_data_url(std::string_view url, const DecodeLimits& limits = {});

// A data URL or a file path.
Image load_image(const std::string& source, const DecodeLimits& limits = {});

// Wraps raw interleaved RGB pixels (3 bytes a pixel, rows top to bottom).
Image image_from_rgb(std::span<const uint8_t> rgb, int width, int height);

}  // namespace lmx::vision
