#include "lmx/vision/resample.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/vision/resample_kernels.h"

namespace lmx::vision {
namespace {

using detail::Coefficients;

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

Coefficients precompute(int in_size, int out_size, const Filter& f, FixedPoint fixed) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = f.support * filterscale;
  Coefficients c;
  c.bits = kPrecisionBits;
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

namespace {

std::atomic<int64_t> g_max_resize_pixels{kMaxImagePixels};

void check_target(const Image& in, int width, int height) {
  if (width <= 0 || height <= 0 || in.width <= 0 || in.height <= 0) {
    throw InvalidArgument("resize: cannot resize " + std::to_string(in.width) + "x" + std::to_string(in.height) +
                          " to " + std::to_string(width) + "x" + std::to_string(height));
  }
  const int64_t pixels = int64_t{width} * height, limit = max_resize_pixels();
  if (pixels > limit) {
    throw InvalidArgument("resize: a " + std::to_string(width) + "x" + std::to_string(height) + " target (" +
                          std::to_string(pixels) + " pixels) is past the limit of " + std::to_string(limit) +
                          " pixels: the processor's size settings ask for more than a vision model takes");
  }
}

}  // namespace

int64_t max_resize_pixels() { return g_max_resize_pixels.load(std::memory_order_relaxed); }
void set_max_resize_pixels(int64_t pixels) { g_max_resize_pixels.store(pixels, std::memory_order_relaxed); }

Image resize(const Image& in, int width, int height, Resample filter, FixedPoint fixed) {
  check_target(in, width, height);
  if (width == in.width && height == in.height) return in;
  if (filter == Resample::kNearest) return nearest(in, width, height);
  Image out = make_image(width, height);
  RowResizer(in, width, height, filter, fixed).rows(0, height, out.rgb.data());
  return out;
}

struct RowResizer::Plan {
  const Image& in;
  int width, height;
  bool need_h, need_v;
  Coefficients ch{}, cv{};
  detail::HorizontalPlan hplan{};
  std::vector<uint8_t> held{};  // input rows [held_begin, held_end), resampled along x
  int held_begin = 0, held_end = 0;

  size_t out_stride() const { return static_cast<size_t>(width) * 3; }
  void horizontal(int row, uint8_t* dst) const { detail::horizontal_row(in.row(row), dst, width, ch, hplan); }
  // Holds rows [begin, end) (bands only move down: rows still needed are kept).
  void hold(int begin, int end) {
    const size_t stride = out_stride();
    if (begin < held_begin || begin >= held_end) {
      held_begin = held_end = begin;
    } else if (begin > held_begin) {
      std::copy(held.begin() + static_cast<ptrdiff_t>((begin - held_begin) * stride),
                held.begin() + static_cast<ptrdiff_t>((held_end - held_begin) * stride), held.begin());
      held_begin = begin;
    }
    if (held.size() < static_cast<size_t>(end - begin) * stride) held.resize(static_cast<size_t>(end - begin) * stride);
    for (int r = held_end; r < end; ++r) horizontal(r, held.data() + static_cast<size_t>(r - held_begin) * stride);
    held_end = std::max(held_end, end);
  }
};

RowResizer::RowResizer(const Image& in, int width, int height, Resample filter, FixedPoint fixed) {
  check_target(in, width, height);
  const Filter f = filter_for(filter);
  plan_ = std::unique_ptr<Plan>(new Plan{.in = in, .width = width, .height = height,
                                         .need_h = width != in.width, .need_v = height != in.height});
  if (plan_->need_h) {
    plan_->ch = precompute(in.width, width, f, fixed);
    plan_->hplan = detail::plan_horizontal(plan_->ch, in.width);
  }
  if (plan_->need_v) plan_->cv = precompute(in.height, height, f, fixed);
}

RowResizer::~RowResizer() = default;

void RowResizer::rows(int y0, int count, uint8_t* dst) {
  Plan& p = *plan_;
  if (y0 < 0 || count < 0 || y0 + count > p.height) throw InvalidArgument("resize: rows out of the image");
  const size_t stride = p.out_stride();
  for (int y = 0; y < count && !p.need_v; ++y) {
    uint8_t* out = dst + static_cast<size_t>(y) * stride;
    if (p.need_h) {
      p.horizontal(y0 + y, out);
    } else {
      std::copy(p.in.row(y0 + y), p.in.row(y0 + y) + stride, out);
    }
  }
  if (!p.need_v || count == 0) return;
  const int end = p.cv.first[y0 + count - 1] + p.cv.count[y0 + count - 1];
  if (p.need_h) p.hold(p.cv.first[y0], end);
  for (int y = 0; y < count; ++y) {
    const int yy = y0 + y;
    const uint8_t* base = p.need_h ? p.held.data() + static_cast<size_t>(p.cv.first[yy] - p.held_begin) * stride
                                   : p.in.row(p.cv.first[yy]);
    detail::vertical_row(base, stride, p.cv, yy, stride, dst + static_cast<size_t>(y) * stride);
  }
}

}  // namespace lmx::vision
