// An 8-bit RGB image in memory, the form every decoder and processor works on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lmx::vision {

// The most pixels an image may have, decoded or resized: Pillow raises its
// DecompressionBombError at twice its MAX_IMAGE_PIXELS (89,478,485), and so do we.
inline constexpr int64_t kMaxImagePixels = 2 * 89'478'485LL;

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // [height, width, 3], rows top to bottom
  std::string source;        // the file or label it was decoded from, for errors

  size_t pixel_count() const { return static_cast<size_t>(width) * static_cast<size_t>(height); }
  const uint8_t* row(int y) const { return rgb.data() + static_cast<size_t>(y) * width * 3; }
  uint8_t* row(int y) { return rgb.data() + static_cast<size_t>(y) * width * 3; }
};

// An image of the given size, every byte 0.
Image make_image(int width, int height);

}  // namespace lmx::vision
