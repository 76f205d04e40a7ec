// NEON (aarch64 Advanced SIMD) kernels for MLX affine-quantized weights on the packed layout
// (quant_pack.cpp describes it): y = x @ dequant(W)^T for any m, 4 rows of W per pass so
// each activation load serves 4 rows.
//
// Numerics, as the AVX2 matvec: per group, y += scale * dot(x, q) + bias * sum(x).
//   f32 activations (the default, and any int16 request: NEON has no int16 path, so it
//   gets the exact one): dot(x, q) in f32 FMAs on the unpacked values, every bit width
//   (planes of 1, 2, 4 bits by shift and mask, 8-bit planes sign-extended).
//   int8 activations (asked for, where the CPU has sdot; 8-bit weights and 4-bit weights in
//   groups of 64 or more, the shapes of the AVX2 int8 matvec): x rounded per group to int8
//   (scale amax / 127), dot(x, q) by sdot in int32, times the group's x scale. An 8-bit
//   plane holds q - 128, so dot(x, q) = dx * sdot(xq, q - 128) + 128 * sum(x) with the exact
//   f32 sum(x), as the AVX2 int8 matvec: x's rounding error then meets q - 128 (centred,
//   |q - 128| <= 128) instead of q (0 .. 255), half the error of 128 * sum(xq) on random
//   weights (tests/backend/cpu/neon_test.cpp derives the bound).
#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/matmul_kernels.h"
#include "lmx/base/thread_pool.h"

namespace lmx::cpu::detail {
namespace {

constexpr int R = PackedQuantWeight::kRows;

// The x rows of one call, prepared once on the calling thread and read by every thread.
struct XRows {
  int64_t groups = 0, kp = 0;
  std::vector<float> xsum;     // [m][groups] sum of x over each group
  std::vector<int8_t> xq;      // [m][kp] x rounded to int8, in the plane's byte order
  std::vector<float> dx;       // [m][groups] scale of xq
};

// Input j of a 4-bit unit (64 inputs) sits in byte b of a row's 32 bytes: low nibble of
// byte b holds input 16 * (b % 4) + b / 4, the high nibble that input + 8 (lane b / 4 of
// the unit's 8 uint32 lanes, position 2 * (b % 4) or 2 * (b % 4) + 1). xq takes the order
// low nibbles (32 bytes) then high nibbles (32 bytes), so sdot meets its weights.
void order_for_nibbles(const int8_t* src, int8_t* dst) {
  for (int b = 0; b < 32; ++b) {
    dst[b] = src[16 * (b % 4) + b / 4];
    dst[32 + b] = src[16 * (b % 4) + 8 + b / 4];
  }
}

void prepare_rows(const float* x,
                  int64_t ldx,
                  int64_t m,
                  const PackedQuantWeight& w,
                  bool int8,
                  XRows& xr) {
  const int64_t gs = w.group_size();
  xr.groups = w.k() / gs;
  xr.kp = w.k_padded();
  xr.xsum.resize(static_cast<size_t>(m * xr.groups));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t g = 0; g < xr.groups; ++g) {
      const float* xg = x + i * ldx + g * gs;
      float32x4_t s = vdupq_n_f32(0.0f);
      for (int64_t j = 0; j < gs; j += 4) s = vaddq_f32(s, vld1q_f32(xg + j));
      xr.xsum[static_cast<size_t>(i * xr.groups + g)] = vaddvq_f32(s);
    }
  if (!int8) return;
  xr.xq.assign(static_cast<size_t>(m * xr.kp), 0);
  xr.dx.resize(xr.xsum.size());
  int8_t tmp[128];
  for (int64_t i = 0; i < m; ++i)
    for (int64_t g = 0; g < xr.groups; ++g) {
      const float* xg = x + i * ldx + g * gs;
      float amax = 0.0f;
      for (int64_t j = 0; j < gs; ++j) amax = std::max(amax, std::fabs(xg[j]));
      const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      for (int64_t j = 0; j < gs; ++j) tmp[j] = static_cast<int8_t>(std::lrint(xg[j] * inv));
      xr.dx[static_cast<size_t>(i * xr.groups + g)] = amax / 127.0f;
      int8_t* dst = xr.xq.data() + i * xr.kp + g * gs;
      if (w.bits() == 4) {
        for (int64_t u = 0; u < gs / 64; ++u) order_for_nibbles(tmp + u * 64, dst + u * 64);
      } else {
        std::memcpy(dst, tmp, static_cast<size_t>(gs));
      }
    }
}

// dot[rr] += sum over inputs [j0, j1) of x * (value of a plane of B in {1, 2, 4} bits) for
// the block's 4 rows. A plane unit holds 256 / B inputs; the 8 inputs at 8p + l of a unit
// are bits [B p, B p + B) of its lanes l = 0..7.
template <int B>
void plane_dot(const uint8_t* plane, const float* x, int64_t j0, int64_t j1, float dot[R]) {
  constexpr int64_t kUnit = 256 / B;
  const uint32x4_t mask = vdupq_n_u32((1u << B) - 1u);
  float32x4_t acc[R][2];
  for (auto& a : acc) a[0] = a[1] = vdupq_n_f32(0.0f);
  for (int64_t j = j0; j < j1; j += 8) {
    const int64_t u = j / kUnit;
    const int32x4_t shift = vdupq_n_s32(-B * static_cast<int32_t>((j % kUnit) / 8));
    const float32x4_t x0 = vld1q_f32(x + j), x1 = vld1q_f32(x + j + 4);
    for (int rr = 0; rr < R; ++rr) {
      const auto* lanes = reinterpret_cast<const uint32_t*>(plane + (u * R + rr) * 32);
      const uint32x4_t q0 = vandq_u32(vshlq_u32(vld1q_u32(lanes), shift), mask);
      const uint32x4_t q1 = vandq_u32(vshlq_u32(vld1q_u32(lanes + 4), shift), mask);
      acc[rr][0] = vfmaq_f32(acc[rr][0], vcvtq_f32_u32(q0), x0);
      acc[rr][1] = vfmaq_f32(acc[rr][1], vcvtq_f32_u32(q1), x1);
    }
  }
  for (int rr = 0; rr < R; ++rr) dot[rr] += vaddvq_f32(vaddq_f32(acc[rr][0], acc[rr][1]));
}

// The same for an 8-bit plane: units of 32 inputs, each row's 32 bytes the int8 q - 128.
void plane_dot8(const uint8_t* plane, const float* x, int64_t j0, int64_t j1, float dot[R]) {
  float32x4_t acc[R][2];
  for (auto& a : acc) a[0] = a[1] = vdupq_n_f32(0.0f);
  for (int64_t j = j0; j < j1; j += 16) {
    const int64_t u = j / 32, off = j % 32;
    float32x4_t xv[4];
    for (int v = 0; v < 4; ++v) xv[v] = vld1q_f32(x + j + 4 * v);
    for (int rr = 0; rr < R; ++rr) {
      const int8x16_t q = vld1q_s8(reinterpret_cast<const int8_t*>(plane + (u * R + rr) * 32 + off));
      const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_s8(vget_high_s8(q));
      const int32x4_t q32[4] = {vmovl_s16(vget_low_s16(lo)), vmovl_s16(vget_high_s16(lo)),
                                vmovl_s16(vget_low_s16(hi)), vmovl_s16(vget_high_s16(hi))};
      for (int v = 0; v < 4; ++v)
        acc[rr][v % 2] = vfmaq_f32(acc[rr][v % 2], vcvtq_f32_s32(q32[v]), xv[v]);
    }
  }
  for (int rr = 0; rr < R; ++rr) dot[rr] += vaddvq_f32(vaddq_f32(acc[rr][0], acc[rr][1]));
}

// sum over group g of x * q for the 4 rows of a block, f32 activations: the planes' dots,
// each scaled back by 2^(its shift), plus q_offset * sum(x) (8-bit planes hold q - 128).
void group_dot_f32(const PackedQuantWeight& w,
                   const uint8_t* block,
                   const float* x,
                   float xsum,
                   int64_t g,
                   float dot[R]) {
  const int64_t j0 = g * w.group_size(), j1 = j0 + w.group_size();
  for (int rr = 0; rr < R; ++rr) dot[rr] = static_cast<float>(w.q_offset()) * xsum;
  for (int p = 0; p < w.num_planes(); ++p) {
    const uint8_t* plane = block + w.plane_offset(p);
    float part[R] = {0.0f, 0.0f, 0.0f, 0.0f};
    switch (w.plane_bits(p)) {
      case 8:
        plane_dot8(plane, x, j0, j1, part);
        break;
      case 4:
        plane_dot<4>(plane, x, j0, j1, part);
        break;
      case 2:
        plane_dot<2>(plane, x, j0, j1, part);
        break;
      default:
        plane_dot<1>(plane, x, j0, j1, part);
        break;
    }
    for (int rr = 0; rr < R; ++rr) dot[rr] += std::ldexp(part[rr], w.plane_shift(p));
  }
}

}  // namespace
}  // namespace lmx::cpu::detail

// The one function that uses sdot (called only after cpu_features().use_neon_dotprod()).
#include "lmx/backend/cpu/neon_dotprod_target.h"

namespace lmx::cpu::detail {
namespace {

// sum over group g of x * q for the 4 rows of a block from int8 x: 8-bit planes (q - 128
// as int8) take x's bytes in order and add 128 * sum(x) (xsum: the exact f32 sum of the
// group); 4-bit planes split each byte
// into its low and high nibble against x in the order of order_for_nibbles.
void group_dot_int8(const PackedQuantWeight& w,
                    const uint8_t* block,
                    const int8_t* xq,
                    float dx,
                    float xsum,
                    int64_t g,
                    float dot[R]) {
  const int64_t j0 = g * w.group_size(), j1 = j0 + w.group_size();
  const uint8_t* plane = block + w.plane_offset(0);
  int32x4_t acc[R];
  for (auto& a : acc) a = vdupq_n_s32(0);
  if (w.bits() == 8) {
    for (int64_t j = j0; j < j1; j += 16) {
      const int8x16_t xv = vld1q_s8(xq + j);
      const uint8_t* unit = plane + (j / 32) * R * 32 + j % 32;
      for (int rr = 0; rr < R; ++rr)
        acc[rr] = vdotq_s32(acc[rr], vld1q_s8(reinterpret_cast<const int8_t*>(unit + rr * 32)), xv);
    }
  } else {
    const uint8x16_t low = vdupq_n_u8(0x0F);
    for (int64_t j = j0; j < j1; j += 64) {
      const int8x16_t x0 = vld1q_s8(xq + j), x1 = vld1q_s8(xq + j + 16);
      const int8x16_t x2 = vld1q_s8(xq + j + 32), x3 = vld1q_s8(xq + j + 48);
      const uint8_t* unit = plane + (j / 64) * R * 32;
      for (int rr = 0; rr < R; ++rr) {
        const uint8x16_t w0 = vld1q_u8(unit + rr * 32), w1 = vld1q_u8(unit + rr * 32 + 16);
        int32x4_t a = acc[rr];
        a = vdotq_s32(a, vreinterpretq_s8_u8(vandq_u8(w0, low)), x0);
        a = vdotq_s32(a, vreinterpretq_s8_u8(vandq_u8(w1, low)), x1);
        a = vdotq_s32(a, vreinterpretq_s8_u8(vshrq_n_u8(w0, 4)), x2);
        acc[rr] = vdotq_s32(a, vreinterpretq_s8_u8(vshrq_n_u8(w1, 4)), x3);
      }
    }
  }
  const float offset = static_cast<float>(w.q_offset()) * xsum;
  for (int rr = 0; rr < R; ++rr) dot[rr] = dx * static_cast<float>(vaddvq_s32(acc[rr])) + offset;
}

}  // namespace
}  // namespace lmx::cpu::detail

#include "lmx/backend/cpu/neon_dotprod_target_end.h"

namespace lmx::cpu::detail {
namespace {

// Rows [4 b, 4 b + 4) of y for x row i.
void block_row(const PackedQuantWeight& w,
               int64_t b,
               const float* x,
               const XRows& xr,
               int64_t i,
               bool int8,
               float* y) {
  const uint8_t* block = w.data() + b * w.block_bytes();
  const Dtype sd = w.scale_dtype();
  float acc[R] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int64_t g = 0; g < xr.groups; ++g) {
    const size_t at = static_cast<size_t>(i * xr.groups + g);
    float dot[R];
    if (int8)
      group_dot_int8(w, block, xr.xq.data() + i * xr.kp, xr.dx[at], xr.xsum[at], g, dot);
    else
      group_dot_f32(w, block, x, xr.xsum[at], g, dot);
    for (int rr = 0; rr < R; ++rr) {
      const float s = load_scalar(block + w.scales_offset(), sd, g * R + rr);
      const float bias = load_scalar(block + w.biases_offset(), sd, g * R + rr);
      acc[rr] += s * dot[rr] + bias * xr.xsum[at];
    }
  }
  const int64_t rows = std::min<int64_t>(R, w.n() - b * R);
  for (int64_t rr = 0; rr < rows; ++rr) y[rr] = acc[rr];
}

}  // namespace

bool neon_int8_activations(const PackedQuantWeight& w, ActivationPrecision asked) {
  return asked == ActivationPrecision::int8 && cpu_features().use_neon_dotprod() &&
         (w.bits() == 8 || (w.bits() == 4 && w.group_size() >= 64));
}

void quantized_matmul_packed_neon(const float* x,
                                  int64_t ldx,
                                  const PackedQuantWeight& w,
                                  float* y,
                                  int64_t ldy,
                                  int64_t m,
                                  const QuantMatmulOptions& options,
                                  ThreadPool& pool) {
  const bool int8 = neon_int8_activations(w, options.activations);
  thread_local XRows xr;
  prepare_rows(x, ldx, m, w, int8, xr);
  const int64_t blocks = (w.n() + R - 1) / R;
  const int64_t grain = std::max<int64_t>(1, 65536 / (R * std::max<int64_t>(w.k(), 1)));
  const XRows& rows = xr;
  parallel_for_on(pool, blocks, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t i = 0; i < m; ++i)
        block_row(w, b, x + i * ldx, rows, i, int8, y + i * ldy + b * R);
  });
}

}  // namespace lmx::cpu::detail
