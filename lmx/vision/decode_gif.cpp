// GIF, first frame only, through giflib. Like Pillow 9+, the first frame is a palette
// image on the logical screen: pixels outside the frame take the transparent index (or
// index 0), every index maps to its palette colour (transparency ignored by
// convert("RGB")), indices past the palette are black.
#include <gif_lib.h>

#include <cstring>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/vision/decoders.h"

namespace lmx::vision::detail {
namespace {

struct GifSource {
  std::span<const uint8_t> bytes;
  size_t pos = 0;
};

int on_read(GifFileType* gif, GifByteType* out, int n) {
  auto* src = static_cast<GifSource*>(gif->UserData);
  size_t take = std::min<size_t>(static_cast<size_t>(n), src->bytes.size() - src->pos);
  std::memcpy(out, src->bytes.data() + src->pos, take);
  src->pos += take;
  return static_cast<int>(take);
}

struct GifCloser {
  GifFileType* gif;
  ~GifCloser() {
    int err = 0;
    if (gif) DGifCloseFile(gif, &err);
  }
};

}  // namespace

Decoded decode_gif(std::span<const uint8_t> bytes, const std::string& label,
                   const DecodeLimits& limits) {
  GifSource source{bytes};
  int error = 0;
  GifFileType* gif = DGifOpen(&source, on_read, &error);
  if (!gif) throw FormatError(label + ": cannot decode GIF: " + GifErrorString(error));
  GifCloser closer{gif};
  auto fail = [&](const char* what) -> void {
    const char* why = GifErrorString(gif->Error);
    throw FormatError(label + ": cannot decode GIF: " + what + (why ? std::string(": ") + why : ""));
  };
  check_dimensions(gif->SWidth, gif->SHeight, label, limits);
  int transparent = -1;
  GifRecordType type;
  do {
    if (DGifGetRecordType(gif, &type) == GIF_ERROR) fail("bad record");
    if (type == EXTENSION_RECORD_TYPE) {
      int code = 0;
      GifByteType* ext = nullptr;
      if (DGifGetExtension(gif, &code, &ext) == GIF_ERROR) fail("bad extension");
      if (code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4 && (ext[1] & 1)) transparent = ext[4];
      while (ext) {
        if (DGifGetExtensionNext(gif, &ext) == GIF_ERROR) fail("bad extension");
      }
    } else if (type == TERMINATE_RECORD_TYPE) {
      throw FormatError(label + ": GIF has no frame");
    }
  } while (type != IMAGE_DESC_RECORD_TYPE);
  if (DGifGetImageDesc(gif) == GIF_ERROR) fail("bad frame descriptor");
  const GifImageDesc& d = gif->Image;
  check_dimensions(d.Width, d.Height, label, limits);
  const ColorMapObject* map = d.ColorMap ? d.ColorMap : gif->SColorMap;
  const int sw = gif->SWidth, sh = gif->SHeight;
  std::vector<uint8_t> indices(static_cast<size_t>(sw) * sh,
                               static_cast<uint8_t>(transparent >= 0 ? transparent : 0));
  std::vector<GifPixelType> line(static_cast<size_t>(d.Width > 0 ? d.Width : 1));
  static const int kPassStart[] = {0, 4, 2, 1}, kPassStep[] = {8, 8, 4, 2};
  std::vector<int> order;  // the frame row each stored line fills
  if (d.Interlace) {
    for (int p = 0; p < 4; ++p)
      for (int y = kPassStart[p]; y < d.Height; y += kPassStep[p]) order.push_back(y);
  } else {
    for (int y = 0; y < d.Height; ++y) order.push_back(y);
  }
  for (int fy : order) {
    if (DGifGetLine(gif, line.data(), d.Width) == GIF_ERROR) fail("truncated or damaged frame");
    int y = d.Top + fy;
    if (y < 0 || y >= sh) continue;
    for (int fx = 0; fx < d.Width; ++fx) {
      int x = d.Left + fx;
      if (x >= 0 && x < sw) indices[static_cast<size_t>(y) * sw + x] = line[fx];
    }
  }
  Decoded out;
  out.image = make_image(sw, sh);
  for (size_t i = 0; i < indices.size(); ++i) {
    int idx = indices[i];
    uint8_t* px = out.image.rgb.data() + 3 * i;
    if (map && idx < map->ColorCount) {
      px[0] = map->Colors[idx].Red;
      px[1] = map->Colors[idx].Green;
      px[2] = map->Colors[idx].Blue;
    }
  }
  return out;
}

}  // namespace lmx::vision::detail
