// The per-format decoders behind decode_image() (image_decode.cpp), and EXIF orientation.
// Each returns the pixels converted to RGB as Pillow's convert("RGB") would, before the
// EXIF orientation is applied.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "lmx/vision/image.h"
#include "lmx/vision/image_decode.h"

namespace lmx::vision::detail {

struct Decoded {
  Image image;
  int orientation = 1;  // EXIF tag 0x0112, 1 (as stored) to 8
};

// Throws lmx::InvalidArgument naming `label` when width x height is over the limit or
// either side is not positive.
void check_dimensions(int64_t width, int64_t height, const std::string& label,
                      const DecodeLimits& limits);

Decoded decode_png(std::span<const uint8_t> bytes, const std::string& label,
                   const DecodeLimits& limits);
Decoded decode_jpeg(std::span<const uint8_t> bytes, const std::string& label,
                    const DecodeLimits& limits);
Decoded decode_webp(std::span<const uint8_t> bytes, const std::string& label,
                    const DecodeLimits& limits);
Decoded decode_gif(std::span<const uint8_t> bytes, const std::string& label,
                   const DecodeLimits& limits);

// The orientation tag of an EXIF block (a TIFF structure, with or without the leading
// "Exif\0\0"); 1 when absent or unreadable, as Pillow treats a broken block.
int exif_orientation(std::span<const uint8_t> exif);

// Applies an EXIF orientation (Pillow's ImageOps.exif_transpose).
Image apply_orientation(const Image& image, int orientation);

}  // namespace lmx::vision::detail
