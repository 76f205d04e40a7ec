// WebP (lossy, lossless, first frame of an animation is not supported: libwebp's simple
// decoder refuses animations) through libwebp, alpha dropped as Pillow's convert("RGB")
// does. The EXIF chunk of the RIFF container gives the orientation.
#include <webp/decode.h>

#include <cstring>

#include "lmx/base/error.h"
#include "lmx/vision/decoders.h"

namespace lmx::vision::detail {
namespace {

std::span<const uint8_t> find_exif_chunk(std::span<const uint8_t> b) {
  size_t pos = 12;  // after "RIFF" size "WEBP"
  while (pos + 8 <= b.size()) {
    uint32_t size = b[pos + 4] | (b[pos + 5] << 8) | (b[pos + 6] << 16) |
                    (static_cast<uint32_t>(b[pos + 7]) << 24);
    if (size > b.size() - pos - 8) break;
    if (std::memcmp(b.data() + pos, "EXIF", 4) == 0) return b.subspan(pos + 8, size);
    pos += 8 + size + (size & 1);
  }
  return {};
}

}  // namespace

Decoded decode_webp(std::span<const uint8_t> bytes, const std::string& label,
                    const DecodeLimits& limits) {
  WebPBitstreamFeatures features;
  if (WebPGetFeatures(bytes.data(), bytes.size(), &features) != VP8_STATUS_OK) {
    throw FormatError(label + ": cannot decode WebP: bad or truncated header");
  }
  check_dimensions(features.width, features.height, label, limits);
  if (features.has_animation) {
    throw Unsupported(label + ": animated WebP is not supported");
  }
  int w = 0, h = 0;
  uint8_t* rgba = WebPDecodeRGBA(bytes.data(), bytes.size(), &w, &h);
  if (!rgba) throw FormatError(label + ": cannot decode WebP: damaged or truncated data");
  Decoded out;
  try {
    out.image = make_image(w, h);
  } catch (...) {
    WebPFree(rgba);
    throw;
  }
  const size_t n = out.image.pixel_count();
  for (size_t i = 0; i < n; ++i) std::memcpy(out.image.rgb.data() + 3 * i, rgba + 4 * i, 3);
  WebPFree(rgba);
  out.orientation = exif_orientation(find_exif_chunk(bytes));
  return out;
}

}  // namespace lmx::vision::detail
