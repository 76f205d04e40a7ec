#include "lmx/server/image_source.h"

#include <system_error>

#include "lmx/base/error.h"
#include "lmx/models/vlm/image_inputs.h"
#include "lmx/server/api_error.h"
#include "lmx/vision/image_decode.h"

namespace lmx::server {

namespace {

namespace fs = std::filesystem;

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// The file a url names, when it lies under `dir` (both resolved).
fs::path allowed_file(const ImagePart& part, const fs::path& dir) {
  const std::string path = starts_with(part.url, "file://") ? part.url.substr(7) : part.url;
  if (dir.empty())
    throw ApiError(400,
                   "'" + part.param + "': file images are off (start lmx serve with --image-dir DIR to allow "
                   "files under DIR); send the image as a data:image/...;base64 URL",
                   part.param, "image_source_refused");
  if (path.empty() || path[0] != '/')
    throw ApiError(400, "'" + part.param + "' must be a data:image/...;base64 URL or an absolute file path",
                   part.param, "invalid_image_url");
  std::error_code ec;
  const fs::path root = fs::canonical(dir, ec);
  const fs::path file = ec ? fs::path() : fs::canonical(path, ec);
  bool inside = !ec && fs::is_regular_file(file, ec);
  if (inside) {
    auto r = root.begin();
    for (auto f = file.begin(); r != root.end() && f != file.end() && *r == *f; ++r, ++f) {
    }
    inside = r == root.end();
  }
  if (!inside)
    throw ApiError(400, "'" + part.param + "': no such image file under the server's --image-dir", part.param,
                   "image_source_refused");
  return file;
}

vision::Image decode_part(const ImagePart& part, const ImageSourceLimits& limits) {
  if (starts_with(part.url, "http://") || starts_with(part.url, "https://"))
    throw ApiError(400,
                   "'" + part.param + "': remote image URLs are not fetched (lmx serve works offline); send the "
                   "image as a data:image/...;base64 URL",
                   part.param, "image_source_refused");
  vision::DecodeLimits d;
  d.max_pixels = limits.max_pixels;
  d.max_bytes = limits.max_bytes;
  try {
    if (starts_with(part.url, "data:")) return vision::decode_data_url(part.url, d);
    return vision::load_image_file(allowed_file(part, limits.image_dir), d);
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    // Damaged or unsupported bytes, bad base64, over the limits (the message says which).
    throw ApiError(400, "'" + part.param + "': " + e.what(), part.param, "invalid_image");
  }
}

}  // namespace

RequestImages load_request_images(const std::vector<ImagePart>& parts, const vision::ImageProcessor& processor,
                                  const ImageSourceLimits& limits) {
  if (parts.size() > limits.max_images)
    throw ApiError(400,
                   "a request holds at most " + std::to_string(limits.max_images) + " images; '" +
                       parts[limits.max_images].param + "' is one too many",
                   parts[limits.max_images].param, "too_many_images");
  RequestImages out;
  std::vector<vision::Image> decoded;
  for (const ImagePart& part : parts) {
    vision::Image image = decode_part(part, limits);
    generate::ChatImage ci;
    ci.hash = generate::image_hash(image);
    try {
      ci.inputs = models::vlm::image_inputs(processor.process({image}));
    } catch (const Error& e) {
      // What the processor cannot take (an extreme aspect ratio, too small an image).
      throw ApiError(400, "'" + part.param + "': " + e.what(), part.param, "invalid_image");
    }
    out.images.push_back(std::move(ci));
    decoded.push_back(std::move(image));
  }
  if (!decoded.empty()) out.inputs = models::vlm::image_inputs(processor.process(decoded));
  return out;
}

}  // namespace lmx::server
