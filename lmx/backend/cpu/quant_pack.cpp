// The load-time packed layout of MLX affine-quantized weights (PackedQuantWeight):
// packing, the exact way back to the MLX tensors, dequantization, and the scalar matmul
// over it (the AVX2 kernels are in quant_avx2.cpp).
//
// Packed layout, per block of kRows = 4 rows (rows past n are zero):
//   planes: the value q is split into at most two bit planes (3 = 2+1, 5 = 4+1,
//     6 = 4+2; 2, 4, 8 are one plane). A plane of b in {1, 2, 4} bits is stored in units
//     of 256/b inputs; a unit holds, for each of the 4 rows, 32 bytes = 8 uint32 lanes,
//     lane l bits [b*p, b*p + b) holding input 8p + l of the unit. So "lane AND mask(p)"
//     (or a shift for the top position) gives 8 consecutive inputs scaled by 2^(b*p),
//     which the kernels undo by pre-scaling x once per call. An 8-bit plane is stored in
//     units of 32 inputs as bytes q ^ 0x80 (= q - 128 as int8), for sign-extending
//     loads and int8 dot products (q_offset = 128 puts it back).
//   scales, biases: [groups][4] in the source dtype.
// k is padded (with zeros) to a whole number of units of the narrowest plane: 32 inputs
// for 8 bits, 64 for 4 bits, 128 for 2 bits, 256 when a 1-bit plane exists. Padding is
// read bandwidth, so it is kept to what the layout needs (Qwen's k = 896 needs none at 4 bits).
//
// 4- and 8-bit rows (nearly every checkpoint) move whole units at a time: a 4-bit unit is
// an 8x8 transpose of 4-bit values, an 8-bit unit a copy with the sign bit flipped. Other
// widths go value by value.
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/matmul_kernels.h"
#include "lmx/backend/cpu/quantized.h"
#include "lmx/base/thread_pool.h"
#include "lmx/base/error.h"

namespace lmx::cpu {
namespace {

constexpr int R = PackedQuantWeight::kRows;

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Large packed weights go on transparent huge pages: decode streams every byte once per
// token, and 2 MiB pages lift single-thread read bandwidth by ~25% on these machines
// (DESIGN.md, performance notes).
uint8_t* alloc_packed(size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  if (bytes >= 2 * kHuge) {
    const size_t size = (bytes + kHuge - 1) / kHuge * kHuge;
    auto* p = static_cast<uint8_t*>(std::aligned_alloc(kHuge, size));
    if (p) madvise(p, size, MADV_HUGEPAGE);
    return p;
  }
  return static_cast<uint8_t*>(
      std::aligned_alloc(64, std::max<size_t>((bytes + 63) / 64 * 64, 64)));
}

// Transposes the 8x8 matrix of 4-bit values in 8 uint32 words (value c of word r at bits
// [4c, 4c + 4)): afterwards value c of word r is the former value r of word c. 64 inputs
// of a 4-bit MLX row (word r holds inputs 8r..8r+7) become a packed unit (lane c holds
// input 8p + c at position p), and the transpose is its own inverse. One delta swap per
// bit of the row / column index, on pairs of words held in 64-bit integers.
uint64_t load64(const void* p, int i) {
  uint64_t v;
  std::memcpy(&v, static_cast<const uint8_t*>(p) + 8 * i, 8);
  return v;
}

void store64(void* p, int i, uint64_t v) { std::memcpy(static_cast<uint8_t*>(p) + 8 * i, &v, 8); }

// Swaps the bits of a selected by mask with those of b `shift` places above them.
void delta_swap(uint64_t& a, uint64_t& b, int shift, uint64_t mask) {
  const uint64_t t = ((a >> shift) ^ b) & mask;
  b ^= t;
  a ^= t << shift;
}

void transpose_nibbles(const void* in, void* out) {
  // Four named words (not an array) stay in registers; 16-byte moves through the stack
  // would stall store forwarding.
  uint64_t x0 = load64(in, 0), x1 = load64(in, 1), x2 = load64(in, 2), x3 = load64(in, 3);
  for (uint64_t* v :
       {&x0, &x1, &x2, &x3}) {  // odd columns of even rows <-> even columns of odd rows
    const uint64_t t = ((*v >> 28) ^ *v) & 0x00000000F0F0F0F0ull;
    *v ^= t ^ (t << 28);
  }
  delta_swap(x0, x1, 8, 0x00FF00FF00FF00FFull);  // 2x2 blocks
  delta_swap(x2, x3, 8, 0x00FF00FF00FF00FFull);
  delta_swap(x0, x2, 16, 0x0000FFFF0000FFFFull);  // 4x4 blocks
  delta_swap(x1, x3, 16, 0x0000FFFF0000FFFFull);
  store64(out, 0, x0);
  store64(out, 1, x1);
  store64(out, 2, x2);
  store64(out, 3, x3);
}

// Where row rr of a block keeps its 32 bytes of unit u of a plane, from the block's start.
int64_t unit_offset(const PackedQuantWeight& p, int plane, int64_t u, int rr) {
  return p.plane_offset(plane) + (u * R + rr) * 32;
}

// Value of weight j of packed row r (before q_offset), for the scalar paths.
uint32_t packed_q(const PackedQuantWeight& w, int64_t r, int64_t j) {
  const int64_t rb = r / R;
  const int rr = static_cast<int>(r % R);
  const uint8_t* block = w.data() + rb * w.block_bytes();
  uint32_t q = 0;
  for (int p = 0; p < w.num_planes(); ++p) {
    const int b = w.plane_bits(p);
    const uint8_t* plane = block + w.plane_offset(p);
    uint32_t v;
    if (b == 8) {
      v = plane[(j / 32) * 32 * R + rr * 32 + j % 32];
    } else {
      const int64_t unit = 256 / b, u = j / unit, pos = (j % unit) / 8, lane = j % 8;
      uint32_t word;
      std::memcpy(&word, plane + (u * R + rr) * 32 + lane * 4, 4);
      v = (word >> (b * pos)) & ((1u << b) - 1u);
    }
    q |= v << w.plane_shift(p);
  }
  return q;
}

// Copies the scales and biases of one row between [groups] (MLX, src/dst stride 1) and
// the block's [groups][4] (packed, stride 4).
template <typename T>
void move_scales(
    const void* src, int64_t src_stride, void* dst, int64_t dst_stride, int64_t groups) {
  const T* s = static_cast<const T*>(src);
  T* d = static_cast<T*>(dst);
  for (int64_t g = 0; g < groups; ++g) d[g * dst_stride] = s[g * src_stride];
}

void move_scales(const void* src,
                 int64_t src_stride,
                 void* dst,
                 int64_t dst_stride,
                 int64_t groups,
                 size_t size) {
  if (size == 2)
    move_scales<uint16_t>(src, src_stride, dst, dst_stride, groups);
  else
    move_scales<uint32_t>(src, src_stride, dst, dst_stride, groups);
}

// The k values of an MLX row as bytes: every 8 values of B bits fill B bytes exactly.
template <int B>
void unpack_values(const uint8_t* bytes, int64_t k, uint8_t* q) {
  const int64_t row_bytes = k * B / 8;
  for (int64_t g = 0; g < k / 8; ++g) {
    // An 8-byte load where the row has 8 bytes left (a B-byte copy into a 64-bit local
    // would stall store forwarding), the exact B bytes at the end of the row.
    uint64_t v = 0;
    if (g * B + 8 <= row_bytes)
      v = load64(bytes + g * B, 0);
    else
      std::memcpy(&v, bytes + g * B, B);
    for (int i = 0; i < 8; ++i)
      q[g * 8 + i] = static_cast<uint8_t>((v >> (B * i)) & ((1u << B) - 1u));
  }
}

void unpack_values(const uint32_t* row, int bits, int64_t k, uint8_t* q) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(row);
  switch (bits) {
    case 2:
      return unpack_values<2>(bytes, k, q);
    case 3:
      return unpack_values<3>(bytes, k, q);
    case 5:
      return unpack_values<5>(bytes, k, q);
    default:
      return unpack_values<6>(bytes, k, q);
  }
}

// One plane (b in {1, 2, 4} bits of each value, from bit sh) of a row's values q (zero past
// k up to the padded length) into the row's unit slots starting at `slot` (units R * 32
// bytes apart). Byte j of lane l holds the values of the 8 / b groups of 8 inputs
// j * 8 / b ..: each group is one 64-bit load of q (byte l = input 8p + l), and the four
// bytes of the 8 lanes are then interleaved.
void pack_plane(const uint8_t* q, int64_t k, int b, int sh, uint8_t* slot) {
  const int64_t unit = 256 / b;
  const int per_byte = 8 / b;
  const uint64_t mask = 0x0101010101010101ull * ((1u << b) - 1u);
  for (int64_t u = 0; u * unit < k; ++u, slot += R * 32) {
    uint64_t v[4];
    for (int j = 0; j < 4; ++j) {
      uint64_t acc = 0;
      for (int i = 0; i < per_byte; ++i)
        acc |= ((load64(q + u * unit + (j * per_byte + i) * 8, 0) >> sh) & mask) << (b * i);
      v[j] = acc;
    }
    for (int lane = 0; lane < 8; ++lane) {
      uint32_t word = 0;
      for (int j = 0; j < 4; ++j)
        word |= static_cast<uint32_t>((v[j] >> (8 * lane)) & 0xffu) << (8 * j);
      std::memcpy(slot + lane * 4, &word, 4);
    }
  }
}

// One MLX row (its k values, scales and biases) into row rr of a zeroed block.
void pack_row(const QuantView& w,
              int64_t r,
              const PackedQuantWeight& p,
              uint8_t* block,
              int rr,
              std::vector<uint8_t>& q) {
  const uint32_t* row = w.w + r * w.w_row_stride();
  const int64_t words = w.k * w.bits / 32;
  if (w.bits == 4) {
    int64_t u = 0;
    for (; u * 8 + 8 <= words; ++u)
      transpose_nibbles(row + u * 8, block + unit_offset(p, 0, u, rr));
    if (u * 8 < words) {  // a half unit (k = 32 mod 64): the padding reads as zeros
      uint32_t in[8] = {};
      std::memcpy(in, row + u * 8, static_cast<size_t>(words - u * 8) * 4);
      transpose_nibbles(in, block + unit_offset(p, 0, u, rr));
    }
  } else if (w.bits == 8) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(row);
    for (int64_t u = 0; u * 32 < w.k; ++u) {
      uint8_t* dst = block + unit_offset(p, 0, u, rr);
      for (int i = 0; i < 32; ++i) dst[i] = static_cast<uint8_t>(bytes[u * 32 + i] ^ 0x80u);
    }
  } else {
    unpack_values(row, w.bits, w.k, q.data());
    for (int pl = 0; pl < p.num_planes(); ++pl)
      pack_plane(q.data(), w.k, p.plane_bits(pl), p.plane_shift(pl),
                 block + unit_offset(p, pl, 0, rr));
  }
  const int64_t groups = w.k / w.group_size, ss = w.s_row_stride();
  const size_t size = dtype_size(w.scale_dtype);
  const auto offset = static_cast<int64_t>(r * ss * static_cast<int64_t>(size));
  move_scales(static_cast<const uint8_t*>(w.scales) + offset, 1,
              block + p.scales_offset() + rr * static_cast<int64_t>(size), R, groups, size);
  move_scales(static_cast<const uint8_t*>(w.biases) + offset, 1,
              block + p.biases_offset() + rr * static_cast<int64_t>(size), R, groups, size);
}

// Packed row r back into its MLX row (words zeroed by the caller), scales and biases.
void unpack_row(const PackedQuantWeight& p, int64_t r, uint32_t* row, void* scales, void* biases) {
  const uint8_t* block = p.data() + (r / R) * p.block_bytes();
  const int rr = static_cast<int>(r % R);
  const int64_t words = p.k() * p.bits() / 32;
  if (p.bits() == 4) {
    int64_t u = 0;
    for (; u * 8 + 8 <= words; ++u)
      transpose_nibbles(block + unit_offset(p, 0, u, rr), row + u * 8);
    if (u * 8 < words) {
      uint32_t out[8];
      transpose_nibbles(block + unit_offset(p, 0, u, rr), out);
      std::memcpy(row + u * 8, out, static_cast<size_t>(words - u * 8) * 4);
    }
  } else if (p.bits() == 8) {
    auto* bytes = reinterpret_cast<uint8_t*>(row);
    for (int64_t u = 0; u * 32 < p.k(); ++u) {
      const uint8_t* src = block + unit_offset(p, 0, u, rr);
      for (int i = 0; i < 32; ++i) bytes[u * 32 + i] = static_cast<uint8_t>(src[i] ^ 0x80u);
    }
  } else {
    auto* bytes = reinterpret_cast<uint8_t*>(row);
    for (int64_t j = 0; j < p.k(); ++j) {
      const int64_t bit = j * p.bits();
      const uint32_t shifted = packed_q(p, r, j) << (bit & 7);
      bytes[bit >> 3] |= static_cast<uint8_t>(shifted & 0xffu);
      if ((bit & 7) + p.bits() > 8) bytes[(bit >> 3) + 1] |= static_cast<uint8_t>(shifted >> 8);
    }
  }
  const int64_t groups = p.k() / p.group_size();
  const size_t size = dtype_size(p.scale_dtype());
  const auto offset = static_cast<int64_t>(r * groups * static_cast<int64_t>(size));
  move_scales(block + p.scales_offset() + rr * static_cast<int64_t>(size), R,
              static_cast<uint8_t*>(scales) + offset, 1, groups, size);
  move_scales(block + p.biases_offset() + rr * static_cast<int64_t>(size), R,
              static_cast<uint8_t*>(biases) + offset, 1, groups, size);
}

}  // namespace

void PackedQuantWeight::Free::operator()(uint8_t* p) const { std::free(p); }

PackedQuantWeight pack_quantized(const QuantView& w) {
  PackedQuantWeight p;
  p.n_ = w.n;
  p.k_ = w.k;
  p.bits_ = w.bits;
  p.group_size_ = w.group_size;
  p.scale_dtype_ = w.scale_dtype;
  switch (w.bits) {
    case 3:
      p.num_planes_ = 2;
      p.plane_bits_[0] = 2;
      p.plane_bits_[1] = 1;
      break;
    case 5:
      p.num_planes_ = 2;
      p.plane_bits_[0] = 4;
      p.plane_bits_[1] = 1;
      break;
    case 6:
      p.num_planes_ = 2;
      p.plane_bits_[0] = 4;
      p.plane_bits_[1] = 2;
      break;
    default:
      p.num_planes_ = 1;
      p.plane_bits_[0] = w.bits;
      break;
  }
  const int narrowest = std::min(p.plane_bits_[0], p.num_planes_ == 2 ? p.plane_bits_[1] : 8);
  p.k_padded_ = round_up(w.k, 256 / narrowest);
  p.plane_shift_[1] = p.plane_bits_[0];
  p.q_offset_ = w.bits == 8 ? 128 : 0;
  const int64_t groups = w.k / w.group_size;
  const int64_t ssize = static_cast<int64_t>(dtype_size(w.scale_dtype));
  int64_t off = 0;
  for (int i = 0; i < p.num_planes_; ++i) {
    p.plane_offset_[i] = off;
    off += round_up(p.k_padded_ * p.plane_bits_[i] / 8 * R, 64);
  }
  p.scales_offset_ = off;
  off += round_up(groups * R * ssize, 64);
  p.biases_offset_ = off;
  off += round_up(groups * R * ssize, 64);
  p.block_bytes_ = off;
  const int64_t blocks = (w.n + R - 1) / R;
  p.bytes_ = static_cast<size_t>(blocks * p.block_bytes_);
  p.data_.reset(alloc_packed(p.bytes_));
  if (!p.data_)
    throw OutOfMemory("pack_quantized: cannot allocate " + std::to_string(p.bytes_) + " bytes");

  // Blocks are independent: each thread zeroes its blocks just before filling them, so the
  // first touch of the fresh pages (the kernel's zeroing) is split over the threads too.
  detail::parallel_for_on(ThreadPool::global(), blocks, 4, [&](int64_t b0, int64_t b1) {
    std::vector<uint8_t> q(w.bits == 4 || w.bits == 8 ? 0 : static_cast<size_t>(p.k_padded_));
    for (int64_t b = b0; b < b1; ++b) {
      uint8_t* block = p.data_.get() + b * p.block_bytes_;
      std::memset(block, 0, static_cast<size_t>(p.block_bytes_));
      for (int rr = 0; rr < R && b * R + rr < w.n; ++rr) pack_row(w, b * R + rr, p, block, rr, q);
    }
  });
  return p;
}

void unpack_quantized(const PackedQuantWeight& w,
                      uint32_t* out_w,
                      void* out_scales,
                      void* out_biases) {
  const int64_t words = w.k() * w.bits() / 32;
  detail::parallel_for_on(ThreadPool::global(), w.n(), 16, [&](int64_t r0, int64_t r1) {
    std::memset(out_w + r0 * words, 0, static_cast<size_t>((r1 - r0) * words) * 4);
    for (int64_t r = r0; r < r1; ++r) unpack_row(w, r, out_w + r * words, out_scales, out_biases);
  });
}

void dequantize_packed(
    const PackedQuantWeight& w, int64_t row_begin, int64_t row_end, float* out, int64_t ldo) {
  const int64_t ssize = static_cast<int64_t>(dtype_size(w.scale_dtype()));
  const uint32_t flip = w.q_offset() ? 0x80u : 0u;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* block = w.data() + (r / R) * w.block_bytes();
    const int64_t rr = r % R;
    float* dst = out + (r - row_begin) * ldo;
    for (int64_t g = 0; g < w.k() / w.group_size(); ++g) {
      const float s =
          detail::load_scalar(block + w.scales_offset() + (g * R + rr) * ssize, w.scale_dtype(), 0);
      const float b =
          detail::load_scalar(block + w.biases_offset() + (g * R + rr) * ssize, w.scale_dtype(), 0);
      for (int64_t j = g * w.group_size(); j < (g + 1) * w.group_size(); ++j)
        dst[j] = s * static_cast<float>(packed_q(w, r, j) ^ flip) + b;
    }
  }
}

PackedQuantWeight PackedQuantWeight::clone() const {
  PackedQuantWeight c;
  c.data_.reset(alloc_packed(bytes_));
  if (!c.data_)
    throw OutOfMemory("PackedQuantWeight::clone: cannot allocate " + std::to_string(bytes_) +
                      " bytes");
  if (bytes_) std::memcpy(c.data_.get(), data_.get(), bytes_);
  c.bytes_ = bytes_;
  c.n_ = n_, c.k_ = k_, c.k_padded_ = k_padded_, c.block_bytes_ = block_bytes_;
  c.bits_ = bits_, c.group_size_ = group_size_, c.num_planes_ = num_planes_,
  c.q_offset_ = q_offset_;
  for (int i = 0; i < 2; ++i) {
    c.plane_bits_[i] = plane_bits_[i];
    c.plane_shift_[i] = plane_shift_[i];
    c.plane_offset_[i] = plane_offset_[i];
  }
  c.scales_offset_ = scales_offset_, c.biases_offset_ = biases_offset_;
  c.scale_dtype_ = scale_dtype_;
  return c;
}

void quantized_matmul(const float* x,
                      int64_t ldx,
                      const PackedQuantWeight& w,
                      float* y,
                      int64_t ldy,
                      int64_t m,
                      const QuantMatmulOptions& options,
                      ThreadPool* pool) {
  if (m <= 0 || w.n() <= 0) return;
  ThreadPool& tp = pool ? *pool : ThreadPool::global();
#ifdef LMX_CPU_X86
  if (cpu_features().use_avx512() && m >= kMinGemmRows &&
      options.activations != ActivationPrecision::f32 &&
      detail::packed_gemm_int_avx512(x, ldx, w, y, ldy, m, options.activations, tp))
    return;
  if (cpu_features().use_avx2()) {
    detail::quantized_matmul_packed_avx2(x, ldx, w, y, ldy, m, options, tp);
    return;
  }
#elif defined(LMX_CPU_ARM64)
  if (cpu_features().use_neon()) {
    detail::quantized_matmul_packed_neon(x, ldx, w, y, ldy, m, options, tp);
    return;
  }
#endif
  // Scalar path over the packed layout (also checks the layout in tests).
  const int64_t gs = w.group_size();
  const int64_t ssize = static_cast<int64_t>(dtype_size(w.scale_dtype()));
  detail::parallel_for_on(tp, w.n(), 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* block = w.data() + (r / R) * w.block_bytes();
      const int64_t rr = r % R;
      for (int64_t i = 0; i < m; ++i) {
        const float* xr = x + i * ldx;
        float acc = 0.0f;
        for (int64_t j = 0; j < w.k(); ++j) {
          const int64_t g = j / gs;
          const float s = detail::load_scalar(block + w.scales_offset() + (g * R + rr) * ssize,
                                              w.scale_dtype(), 0);
          const float b = detail::load_scalar(block + w.biases_offset() + (g * R + rr) * ssize,
                                              w.scale_dtype(), 0);
          const uint32_t q = (packed_q(w, r, j) ^ (w.q_offset() ? 0x80u : 0u));
          acc += xr[j] * (s * static_cast<float>(q) + b);
        }
        y[i * ldy + r] = acc;
      }
    }
  });
}

void quantized_matmul(const float* x,
                      int64_t ldx,
                      std::span<const QuantMatmulTarget> targets,
                      int64_t m,
                      const QuantMatmulOptions& options,
                      ThreadPool* pool) {
  if (m <= 0 || targets.empty()) return;
  ThreadPool& tp = pool ? *pool : ThreadPool::global();
#ifdef LMX_CPU_X86
  if (cpu_features().use_avx2()) {
    detail::quantized_matmul_packed_multi_avx2(x, ldx, targets, m, options, tp);
    return;
  }
#endif
  for (const auto& t : targets) quantized_matmul(x, ldx, *t.w, t.y, t.ldy, m, options, &tp);
}

void quantized_matvec_each(std::span<const float* const> xs,
                           std::span<const QuantMatmulTarget> targets,
                           const QuantMatmulOptions& options,
                           ThreadPool* pool) {
  if (xs.size() != targets.size()) throw InvalidArgument("quantized_matvec_each: inputs and targets differ in number");
  ThreadPool& tp = pool ? *pool : ThreadPool::global();
#ifdef LMX_CPU_X86
  if (cpu_features().use_avx2()) {
    detail::quantized_matvec_each_avx2(xs, targets, options, tp);
    return;
  }
#endif
  for (size_t i = 0; i < targets.size(); ++i)
    quantized_matmul(xs[i], 0, *targets[i].w, targets[i].y, 0, 1, options, &tp);
}

}  // namespace lmx::cpu
