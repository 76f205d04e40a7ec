#include <cstring>

#include "lmx/vision/decoders.h"

namespace lmx::vision::detail {

int exif_orientation(std::span<const uint8_t> exif) {
  if (exif.size() >= 6 && std::memcmp(exif.data(), "Exif\0\0", 6) == 0) exif = exif.subspan(6);
  if (exif.size() < 8) return 1;
  bool little;
  if (exif[0] == 'I' && exif[1] == 'I') {
    little = true;
  } else if (exif[0] == 'M' && exif[1] == 'M') {
    little = false;
  } else {
    return 1;
  }
  auto u16 = [&](size_t at) -> uint32_t {
    return little ? exif[at] | (exif[at + 1] << 8) : (exif[at] << 8) | exif[at + 1];
  };
  auto u32 = [&](size_t at) -> uint32_t {
    return little ? u16(at) | (u16(at + 2) << 16) : (u16(at) << 16) | u16(at + 2);
  };
  if (u16(2) != 42) return 1;
  size_t ifd = u32(4);
  if (ifd > exif.size() || exif.size() - ifd < 2) return 1;
  size_t count = u16(ifd);
  for (size_t i = 0; i < count; ++i) {
    size_t entry = ifd + 2 + 12 * i;
    if (entry + 12 > exif.size()) return 1;
    if (u16(entry) != 0x0112) continue;
    uint32_t type = u16(entry + 2);
    uint32_t value = type == 3 ? u16(entry + 8) : type == 4 ? u32(entry + 8) : 1;
    return value >= 1 && value <= 8 ? static_cast<int>(value) : 1;
  }
  return 1;
}

Image apply_orientation(const Image& in, int orientation) {
  if (orientation <= 1 || orientation > 8) return in;
  const int w = in.width, h = in.height;
  const bool swap = orientation >= 5;  // the four that exchange width and height
  Image out = make_image(swap ? h : w, swap ? w : h);
  for (int y = 0; y < out.height; ++y) {
    uint8_t* dst = out.row(y);
    for (int x = 0; x < out.width; ++x) {
      int sy = y, sx = x;
      switch (orientation) {
        case 2: sx = w - 1 - x; break;                   // mirror left-right
        case 3: sy = h - 1 - y; sx = w - 1 - x; break;   // rotate 180
        case 4: sy = h - 1 - y; break;                   // mirror top-bottom
        case 5: sy = x; sx = y; break;                   // transpose
        case 6: sy = h - 1 - x; sx = y; break;           // rotate 90 clockwise
        case 7: sy = h - 1 - x; sx = w - 1 - y; break;   // transverse
        case 8: sy = x; sx = w - 1 - y; break;           // rotate 90 counter-clockwise
        default: break;
      }
      std::memcpy(dst + 3 * x, in.row(sy) + 3 * sx, 3);
    }
  }
  return out;
}

}  // namespace lmx::vision::detail
