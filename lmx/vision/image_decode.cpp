#include "lmx/vision/image_decode.h"

#include <cstring>
#include <fstream>

#include "lmx/base/base64.h"
#include "lmx/base/error.h"
#include "lmx/vision/decoders.h"
#include "lmx/vision/large_buffer.h"

namespace lmx::vision {

Image make_image(int width, int height) {
  Image image;
  image.width = width;
  image.height = height;
  const size_t bytes = static_cast<size_t>(width) * static_cast<size_t>(height) * 3;
  detail::reserve_large(image.rgb, bytes);
  image.rgb.assign(bytes, 0);
  return image;
}

namespace detail {

void check_dimensions(int64_t width, int64_t height, const std::string& label,
                      const DecodeLimits& limits) {
  if (width <= 0 || height <= 0) {
    throw FormatError(label + ": image has an empty size " + std::to_string(width) + "x" +
                      std::to_string(height));
  }
  if (width * height > limits.max_pixels) {
    throw InvalidArgument(label + ": image of " + std::to_string(width) + "x" +
                          std::to_string(height) + " pixels is over the limit of " +
                          std::to_string(limits.max_pixels) +
                          " pixels (a decompression bomb?); refused before decoding");
  }
}

}  // namespace detail

std::string_view sniff_image_format(std::span<const uint8_t> b) {
  auto starts = [&](const char* magic, size_t n, size_t at = 0) {
    return b.size() >= at + n && std::memcmp(b.data() + at, magic, n) == 0;
  };
  if (starts("\x89PNG\r\n\x1a\n", 8)) return "png";
  if (starts("\xff\xd8\xff", 3)) return "jpeg";
  if (starts("RIFF", 4) && starts("WEBP", 4, 8)) return "webp";
  if (starts("GIF87a", 6) || starts("GIF89a", 6)) return "gif";
  return "";
}

Image decode_image(std::span<const uint8_t> bytes, const std::string& label,
                   const DecodeLimits& limits) {
  if (static_cast<int64_t>(bytes.size()) > limits.max_bytes) {
    throw InvalidArgument(label + ": " + std::to_string(bytes.size()) +
                          " bytes is over the image size limit of " +
                          std::to_string(limits.max_bytes) + " bytes");
  }
  std::string_view format = sniff_image_format(bytes);
  detail::Decoded d;
  if (format == "png") {
    d = detail::decode_png(bytes, label, limits);
  } else if (format == "jpeg") {
    d = detail::decode_jpeg(bytes, label, limits);
  } else if (format == "webp") {
    d = detail::decode_webp(bytes, label, limits);
  } else if (format == "gif") {
    d = detail::decode_gif(bytes, label, limits);
  } else {
    throw FormatError(label + ": not an image lmx can read (PNG, JPEG, WebP or GIF expected)");
  }
  Image image = d.orientation == 1 ? std::move(d.image) : detail::apply_orientation(d.image, d.orientation);
  image.source = label;
  return image;
}

Image load_image_file(const std::filesystem::path& path, const DecodeLimits& limits) {
  const std::string label = path.string();
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) throw IoError(label + ": cannot read image: " + ec.message());
  if (static_cast<int64_t>(size) > limits.max_bytes) {
    throw InvalidArgument(label + ": " + std::to_string(size) +
                          " bytes is over the image size limit of " +
                          std::to_string(limits.max_bytes) + " bytes");
  }
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes(size);
  if (!in || !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size))) {
    throw IoError(label + ": cannot read image");
  }
  return decode_image(bytes, label, limits);
}

Image decode_data_url(std::string_view url, const DecodeLimits& limits) {
  const std::string label = "data URL '" + std::string(url.substr(0, 40)) +
                            (url.size() > 40 ? "...'" : "'");
  size_t comma = url.find(',');
  if (url.substr(0, 5) != "data:" || comma == std::string_view::npos) {
    throw FormatError(label + ": expected data:<mime>;base64,<data>");
  }
  std::string_view meta = url.substr(5, comma - 5);
  if (meta.size() < 7 || meta.substr(meta.size() - 7) != ";base64") {
    throw FormatError(label + ": only base64 data URLs hold images");
  }
  if (static_cast<int64_t>(url.size() - comma) / 4 * 3 > limits.max_bytes) {
    throw InvalidArgument(label + ": over the image size limit of " +
                          std::to_string(limits.max_bytes) + " bytes");
  }
  auto bytes = decode_base64(url.substr(comma + 1));
  if (!bytes) throw FormatError(label + ": invalid base64");
  return decode_image(std::span(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size()),
                      label, limits);
}

Image load_image(const std::string& source, const DecodeLimits& limits) {
  if (source.rfind("data:", 0) == 0) return decode_data_url(source, limits);
  return load_image_file(source, limits);
}

Image image_from_rgb(std::span<const uint8_t> rgb, int width, int height) {
  if (width <= 0 || height <= 0 ||
      rgb.size() != static_cast<size_t>(width) * static_cast<size_t>(height) * 3) {
    throw InvalidArgument("image_from_rgb: " + std::to_string(rgb.size()) +
                          " bytes do not make a " + std::to_string(width) + "x" +
                          std::to_string(height) + " RGB image");
  }
  Image image;
  image.width = width;
  image.height = height;
  image.rgb.assign(rgb.begin(), rgb.end());
  return image;
}

}  // namespace lmx::vision
