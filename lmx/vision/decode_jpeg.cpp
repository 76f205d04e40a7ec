// JPEG through libjpeg(-turbo) with the settings Pillow uses (islow IDCT, fancy
// upsampling, no scaling), so the pixels equal Pillow's. CMYK / YCCK files are read as
// Adobe-inverted CMYK, as Pillow assumes, and converted with Pillow's cmyk2rgb rule.
// jpeglib.h needs size_t and FILE declared first.
#include <csetjmp>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include <jpeglib.h>
#include <jerror.h>

#include <vector>

#include "lmx/base/error.h"
#include "lmx/vision/decoders.h"
#include "lmx/vision/large_buffer.h"

namespace lmx::vision::detail {
namespace {

struct JpegError {
  jpeg_error_mgr mgr;  // first member: libjpeg hands us a pointer to it
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {};
  bool truncated = false;
};

void on_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void on_message(j_common_ptr cinfo, int level) {
  // Pillow refuses a truncated file (LOAD_TRUNCATED_IMAGES is off); libjpeg would only
  // warn and fill the rest with gray.
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    reinterpret_cast<JpegError*>(cinfo->err)->truncated = true;
  }
}

struct JpegJob {
  std::span<const uint8_t> bytes;
  const DecodeLimits* limits = nullptr;
  JpegError err;
  int width = 0, height = 0, components = 0;
  bool cmyk = false, too_large = false;
  std::vector<uint8_t> pixels;  // [height, width, components]
  std::vector<uint8_t> exif;
};

bool run_libjpeg(JpegJob* job) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&job->err.mgr);
  job->err.mgr.error_exit = on_error_exit;
  job->err.mgr.emit_message = on_message;
  if (setjmp(job->err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, job->bytes.data(), static_cast<unsigned long>(job->bytes.size()));
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&cinfo, TRUE);
  int64_t pixels = static_cast<int64_t>(cinfo.image_width) * cinfo.image_height;
  if (pixels <= 0 || pixels > job->limits->max_pixels) {
    job->too_large = true;
    job->width = static_cast<int>(cinfo.image_width);
    job->height = static_cast<int>(cinfo.image_height);
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
    if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 &&
        std::memcmp(m->data, "Exif\0\0", 6) == 0 && job->exif.empty()) {
      job->exif.assign(m->data, m->data + m->data_length);
    }
  }
  switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE: cinfo.out_color_space = JCS_GRAYSCALE; break;
    case JCS_CMYK:
    case JCS_YCCK: cinfo.out_color_space = JCS_CMYK; job->cmyk = true; break;
    default: cinfo.out_color_space = JCS_RGB; break;
  }
  cinfo.dct_method = JDCT_ISLOW;
  cinfo.do_fancy_upsampling = TRUE;
  jpeg_start_decompress(&cinfo);
  job->width = static_cast<int>(cinfo.output_width);
  job->height = static_cast<int>(cinfo.output_height);
  job->components = cinfo.output_components;
  size_t stride = static_cast<size_t>(job->width) * job->components;
  detail::reserve_large(job->pixels, stride * job->height);
  job->pixels.resize(stride * job->height);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = job->pixels.data() + stride * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &row, 1);
    if (job->err.truncated) break;
  }
  if (!job->err.truncated) jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return !job->err.truncated;
}

// Pillow's cmyk2rgb: r = (255 - k) - (c * (255 - k)) / 255 with its rounding division.
uint8_t cmyk_channel(int c, int k) {
  int nk = 255 - k;
  int t = c * nk + 128;
  int v = nk - (((t >> 8) + t) >> 8);
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

}  // namespace

Decoded decode_jpeg(std::span<const uint8_t> bytes, const std::string& label,
                    const DecodeLimits& limits) {
  JpegJob job;
  job.bytes = bytes;
  job.limits = &limits;
  if (!run_libjpeg(&job)) {
    if (job.too_large) check_dimensions(job.width, job.height, label, limits);
    if (job.err.truncated) throw FormatError(label + ": JPEG file is truncated");
    throw FormatError(label + ": cannot decode JPEG: " + job.err.message);
  }
  Decoded out;
  if (job.components == 3 && !job.cmyk) {  // already RGB: the decoder's buffer is the image
    out.image.width = job.width;
    out.image.height = job.height;
    out.image.rgb = std::move(job.pixels);
    out.orientation = exif_orientation(job.exif);
    return out;
  }
  out.image = make_image(job.width, job.height);
  const size_t n = out.image.pixel_count();
  const uint8_t* src = job.pixels.data();
  uint8_t* dst = out.image.rgb.data();
  for (size_t i = 0; i < n; ++i) {
    if (job.components == 1) {
      dst[3 * i] = dst[3 * i + 1] = dst[3 * i + 2] = src[i];
    } else if (job.cmyk) {
      // Adobe files store inverted CMYK; Pillow reads them as "CMYK;I".
      const uint8_t* s = src + 4 * i;
      int k = 255 - s[3];
      for (int c = 0; c < 3; ++c) dst[3 * i + c] = cmyk_channel(255 - s[c], k);
    } else {
      std::memcpy(dst + 3 * i, src + 3 * i, 3);
    }
  }
  out.orientation = exif_orientation(job.exif);
  return out;
}

}  // namespace lmx::vision::detail
