#include "lmx/vision/resample.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "lmx/base/error.h"

namespace lmx::vision {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's fixed point for 8-bit images

double box_filter(double x) { return x > -0.5 && x <= 0.5 ? 1.0 : 0.0; }
double bilinear_filter(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}
double hamming_filter(double x) {
  x = std::fabs(x);
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x *= M_PI;
  return std::sin(x) / x * (0.54 + 0.46 * std::cos(x));
}
double bicubic_filter(double x) {
  constexpr double a = -0.5;  // Pillow's (and Keys') choice
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}
double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= M_PI;
  return std::sin(x) / x;
}
double lanczos_filter(double x) { return x >= -3.0 && x < 3.0 ? sinc(x) * sinc(x / 3.0) : 0.0; }

struct Filter {
  double (*fn)(double);
  double support;
};

Filter filter_for(Resample r) {
  switch (r) {
    case Resample::kBox: return {box_filter, 0.5};
    case Resample::kBilinear: return {bilinear_filter, 1.0};
    case Resample::kHamming: return {hamming_filter, 1.0};
    case Resample::kBicubic: return {bicubic_filter, 2.0};
    case Resample::kLanczos: return {lanczos_filter, 3.0};
    case Resample::kNearest: break;
  }
  throw InvalidArgument("resize: nearest has no convolution filter");
}

// For each output position: the first input index, the count, and `ksize` fixed-point
// weights. The weights are computed in double, normalized to sum 1, then rounded half
// away from zero to `bits` fractional bits: Pillow's 22, or (torch's uint8 kernel) the
// most that keep the largest weight of the axis within int16.
struct Coefficients {
  int ksize = 0;
  int bits = kPrecisionBits;
  std::vector<int> first, count;
  std::vector<int32_t> weights;  // [out_size, ksize]
};

Coefficients precompute(int in_size, int out_size, const Filter& f, FixedPoint fixed) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = f.support * filterscale;
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.weights.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  std::vector<double> normalized(static_cast<size_t>(out_size) * c.ksize, 0.0);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double total = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = f.fn((x + xmin - center + 0.5) * ss);
      total += w[x];
    }
    double* out = normalized.data() + static_cast<size_t>(xx) * c.ksize;
    for (int x = 0; x < xmax; ++x) out[x] = total != 0.0 ? w[x] / total : w[x];
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  if (fixed == FixedPoint::kTorchUint8) {
    double w_max = normalized.empty() ? 0.0 : normalized[0];
    for (double v : normalized) w_max = std::max(w_max, v);
    for (c.bits = 0; c.bits < 22; ++c.bits) {
      if (static_cast<int>(0.5 + w_max * (1 << (c.bits + 1))) >= (1 << 15)) break;
    }
  }
  for (size_t i = 0; i < normalized.size(); ++i) {
    const double v = normalized[i] * (1 << c.bits);
    c.weights[i] = static_cast<int32_t>(v < 0 ? v - 0.5 : v + 0.5);
  }
  return c;
}

uint8_t clip8(int32_t acc, int bits) {
  int32_t v = acc >> bits;  // arithmetic shift, as Pillow's table lookup
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Rows [row0, row0 + rows) of `in`, resampled along x.
Image horizontal_pass(const Image& in, int row0, int rows, int out_width, const Coefficients& c) {
  Image out = make_image(out_width, rows);
  for (int y = 0; y < rows; ++y) {
    const uint8_t* src = in.row(row0 + y);
    uint8_t* dst = out.row(y);
    for (int xx = 0; xx < out_width; ++xx) {
      const int32_t* k = c.weights.data() + static_cast<size_t>(xx) * c.ksize;
      const uint8_t* s = src + 3 * c.first[xx];
      const int32_t half = c.bits > 0 ? 1 << (c.bits - 1) : 0;
      int32_t acc[3] = {half, half, half};
      for (int x = 0; x < c.count[xx]; ++x) {
        acc[0] += s[3 * x] * k[x];
        acc[1] += s[3 * x + 1] * k[x];
        acc[2] += s[3 * x + 2] * k[x];
      }
      for (int ch = 0; ch < 3; ++ch) dst[3 * xx + ch] = clip8(acc[ch], c.bits);
    }
  }
  return out;
}

// `first` indices are relative to row `row_offset` of `in`.
Image vertical_pass(const Image& in, int row_offset, int out_height, const Coefficients& c) {
  Image out = make_image(in.width, out_height);
  const size_t stride = static_cast<size_t>(in.width) * 3;
  // Row by row over the taps, so the inner loop runs along memory (integer sums: the
  // order does not change the result).
  std::vector<int32_t> acc(stride);
  for (int yy = 0; yy < out_height; ++yy) {
    const int32_t* k = c.weights.data() + static_cast<size_t>(yy) * c.ksize;
    const uint8_t* base = in.row(c.first[yy] - row_offset);
    std::fill(acc.begin(), acc.end(), c.bits > 0 ? 1 << (c.bits - 1) : 0);
    for (int y = 0; y < c.count[yy]; ++y) {
      const uint8_t* src = base + y * stride;
      const int32_t w = k[y];
      for (size_t i = 0; i < stride; ++i) acc[i] += src[i] * w;
    }
    uint8_t* dst = out.row(yy);
    for (size_t i = 0; i < stride; ++i) dst[i] = clip8(acc[i], c.bits);
  }
  return out;
}

// Pillow's NEAREST goes through its affine transform: source coordinates are accumulated
// in double from the centre of the first pixel.
Image nearest(const Image& in, int width, int height) {
  Image out = make_image(width, height);
  const double ax = static_cast<double>(in.width) / width;
  const double ay = static_cast<double>(in.height) / height;
  std::vector<int> xs(width);
  double xo = ax * 0.5;
  for (int x = 0; x < width; ++x, xo += ax) xs[x] = std::min(static_cast<int>(xo), in.width - 1);
  double yo = ay * 0.5;
  for (int y = 0; y < height; ++y, yo += ay) {
    const uint8_t* src = in.row(std::min(static_cast<int>(yo), in.height - 1));
    uint8_t* dst = out.row(y);
    for (int x = 0; x < width; ++x) {
      dst[3 * x] = src[3 * xs[x]];
      dst[3 * x + 1] = src[3 * xs[x] + 1];
      dst[3 * x + 2] = src[3 * xs[x] + 2];
    }
  }
  return out;
}

}  // namespace

Resample resample_from_pil(int code, std::string_view field) {
  if (code < 0 || code > 5) {
    throw InvalidArgument(std::string(field) + ": resampling filter " + std::to_string(code) +
                          " is not one of Pillow's 0..5");
  }
  return static_cast<Resample>(code);
}

Image resize(const Image& in, int width, int height, Resample filter, FixedPoint fixed) {
  if (width <= 0 || height <= 0 || in.width <= 0 || in.height <= 0) {
    throw InvalidArgument("resize: cannot resize " + std::to_string(in.width) + "x" +
                          std::to_string(in.height) + " to " + std::to_string(width) + "x" +
                          std::to_string(height));
  }
  if (width == in.width && height == in.height) return in;
  if (filter == Resample::kNearest) return nearest(in, width, height);
  const Filter f = filter_for(filter);
  const bool need_h = width != in.width;
  const bool need_v = height != in.height;
  Coefficients cv = precompute(in.height, height, f, fixed);
  if (!need_h) return vertical_pass(in, 0, height, cv);
  Coefficients ch = precompute(in.width, width, f, fixed);
  // Only the rows the vertical pass reads go through the horizontal pass.
  const int first_row = need_v ? cv.first.front() : 0;
  const int last_row = need_v ? cv.first.back() + cv.count.back() : in.height;
  Image tmp = horizontal_pass(in, first_row, last_row - first_row, width, ch);
  if (!need_v) return tmp;
  return vertical_pass(tmp, first_row, height, cv);
}

}  // namespace lmx::vision
