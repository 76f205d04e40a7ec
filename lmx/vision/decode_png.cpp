// PNG through libpng. Pillow's conversions: palette -> its colours (transparency ignored),
// gray 1/2/4-bit scaled to 8, 16-bit samples keep their high byte except 16-bit gray,
// which Pillow holds as integers and clips at 255; alpha dropped.
#include <png.h>

#include <csetjmp>
#include <cstring>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/vision/decoders.h"

namespace lmx::vision::detail {
namespace {

// Everything the setjmp-guarded function touches lives here, in the caller's frame, so the
// longjmp out of libpng skips no C++ destructor.
struct PngJob {
  std::span<const uint8_t> bytes;
  size_t pos = 0;
  char message[200] = {};
  const std::string* label = nullptr;
  const DecodeLimits* limits = nullptr;
  int width = 0, height = 0, channels = 0, bytes_per_sample = 1;
  bool gray16 = false;
  bool too_large = false;
  std::vector<uint8_t> pixels;  // decoded rows, libpng's layout
  std::vector<png_bytep> rows;
  std::vector<uint8_t> exif;
};

void on_error(png_structp png, png_const_charp msg) {
  auto* job = static_cast<PngJob*>(png_get_error_ptr(png));
  std::snprintf(job->message, sizeof job->message, "%s", msg);
  png_longjmp(png, 1);
}
void on_warning(png_structp, png_const_charp) {}

void on_read(png_structp png, png_bytep out, size_t n) {
  auto* job = static_cast<PngJob*>(png_get_io_ptr(png));
  if (job->bytes.size() - job->pos < n) png_error(png, "file is truncated");
  std::memcpy(out, job->bytes.data() + job->pos, n);
  job->pos += n;
}

bool run_libpng(PngJob* job) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, job, on_error, on_warning);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, job, on_read);
  png_read_info(png, info);
  png_uint_32 w = 0, h = 0;
  int depth = 0, color = 0, interlace = 0;
  png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, nullptr, nullptr);
  int64_t pixels = static_cast<int64_t>(w) * h;
  if (w == 0 || h == 0 || pixels > job->limits->max_pixels) {
    job->too_large = true;
    job->width = static_cast<int>(w > 0x7fffffff ? 0x7fffffff : w);
    job->height = static_cast<int>(h > 0x7fffffff ? 0x7fffffff : h);
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  job->gray16 = depth == 16 && color == PNG_COLOR_TYPE_GRAY;
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (depth == 16 && !job->gray16) png_set_strip_16(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  job->width = static_cast<int>(w);
  job->height = static_cast<int>(h);
  job->channels = png_get_channels(png, info);
  job->bytes_per_sample = png_get_bit_depth(png, info) == 16 ? 2 : 1;
  size_t stride = png_get_rowbytes(png, info);
  job->pixels.resize(stride * h);
  job->rows.resize(h);
  for (png_uint_32 y = 0; y < h; ++y) job->rows[y] = job->pixels.data() + y * stride;
  png_read_image(png, job->rows.data());
  png_read_end(png, info);
#ifdef PNG_eXIf_SUPPORTED
  png_uint_32 exif_size = 0;
  png_bytep exif = nullptr;
  if (png_get_eXIf_1(png, info, &exif_size, &exif) && exif) job->exif.assign(exif, exif + exif_size);
#endif
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

}  // namespace

Decoded decode_png(std::span<const uint8_t> bytes, const std::string& label,
                   const DecodeLimits& limits) {
  PngJob job;
  job.bytes = bytes;
  job.label = &label;
  job.limits = &limits;
  if (!run_libpng(&job)) {
    if (job.too_large) check_dimensions(job.width, job.height, label, limits);
    throw FormatError(label + ": cannot decode PNG: " +
                      (job.message[0] ? job.message : "libpng failed"));
  }
  Decoded out;
  out.image = make_image(job.width, job.height);
  const int ch = job.channels;
  for (int y = 0; y < job.height; ++y) {
    const uint8_t* src = job.rows[y];
    uint8_t* dst = out.image.row(y);
    for (int x = 0; x < job.width; ++x) {
      if (job.gray16) {
        const uint8_t* s = src + x * ch * 2;  // big-endian samples
        uint8_t v = s[0] == 0 ? s[1] : 255;
        dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = v;
      } else if (ch <= 2) {
        dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = src[x * ch];
      } else {
        std::memcpy(dst + 3 * x, src + x * ch, 3);
      }
    }
  }
  out.orientation = exif_orientation(job.exif);
  return out;
}

}  // namespace lmx::vision::detail
