// The two passes of lmx/vision/resample.cpp (detail): fixed-point coefficients, and the
// kernels that apply them along x and along y. The scalar kernels are Pillow's arithmetic
// (int32 sums from half, an arithmetic shift, a clip to 0..255); on x86-64 CPUs with
// AVX2 the vectorized ones compute the same integer sums (each weight split into
// k = hi * 2^15 + lo, 0 <= lo < 2^15, so 16-bit multiply-adds stay exact), hence equal bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lmx::vision::detail {

// For each output position: the first input index, the count, and `ksize` fixed-point
// weights with `bits` fractional bits (zero past the count).
struct Coefficients {
  int ksize = 0;
  int bits = 22;
  std::vector<int> first, count;
  std::vector<int32_t> weights;  // [out_size, ksize]
};

// The horizontal pass's weights in the vectorized kernel's layout (empty where that
// kernel does not run): pixels in pairs, taps in groups of five.
struct HorizontalPlan {
  int groups = 0;      // ceil(ksize / 5)
  int vector_end = 0;  // output pixels [0, vector_end) run vectorized (an even count)
  std::vector<int16_t> weights;
};

// True when this CPU runs the vectorized kernels (and they are not turned off).
bool have_vector_kernels();
// For tests: false runs the scalar kernels only (the default, true, runs the vectorized
// ones where the CPU has them). Not thread-safe against running resizes.
void enable_vector_kernels(bool on);

HorizontalPlan plan_horizontal(const Coefficients& c, int in_width);

// One row: `src` has the input row (3 bytes a pixel), `dst` gets out_width pixels.
void horizontal_row(const uint8_t* src, uint8_t* dst, int out_width, const Coefficients& c, const HorizontalPlan& plan);

// Output row `yy` from the rows of `base` (input row c.first[yy] at base, `stride` bytes
// apart); `n` bytes.
void vertical_row(const uint8_t* base, size_t stride, const Coefficients& c, int yy, size_t n, uint8_t* dst);

}  // namespace lmx::vision::detail
