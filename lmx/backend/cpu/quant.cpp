// MLX affine quantization: quantize / dequantize, the scalar reference matmul, the
// load-time repacking and the dispatch to the AVX2 kernels.
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/matmul_kernels.h"
#include "lmx/backend/cpu/quantized.h"
#include "lmx/backend/cpu/thread_pool.h"
#include "lmx/core/error.h"
#include "lmx/core/half.h"

namespace lmx::cpu {
namespace {

int64_t w_stride_of(const QuantView& w) { return w.w_stride ? w.w_stride : w.k * w.bits / 32; }
int64_t s_stride_of(const QuantView& w) { return w.s_stride ? w.s_stride : w.k / w.group_size; }

void store_scalar(void* p, Dtype dt, int64_t i, float v) {
  switch (dt) {
    case Dtype::f16:
      static_cast<uint16_t*>(p)[i] = f32_to_f16(v);
      break;
    case Dtype::bf16:
      static_cast<uint16_t*>(p)[i] = f32_to_bf16(v);
      break;
    default:
      static_cast<float*>(p)[i] = v;
      break;
  }
}

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

// All k values of an MLX row as bytes (q[j] for j < k; the tail up to k_padded stays 0).
void unpack_row(const uint32_t* row, int bits, int64_t k, uint8_t* q) {
  if (bits == 2 || bits == 4 || bits == 8) {
    const int per = 32 / bits;
    const uint32_t mask = (1u << bits) - 1u;
    for (int64_t wi = 0; wi < k / per; ++wi) {
      const uint32_t word = row[wi];
      for (int e = 0; e < per; ++e)
        q[wi * per + e] = static_cast<uint8_t>((word >> (e * bits)) & mask);
    }
    return;
  }
  for (int64_t j = 0; j < k; ++j) q[j] = static_cast<uint8_t>(detail::mlx_q(row, bits, j));
}

// Value of weight j of packed row r (before q_offset), for the scalar path.
uint32_t packed_q(const PackedQuantWeight& w, int64_t r, int64_t j) {
  const int64_t rb = r / PackedQuantWeight::kRows;
  const int rr = static_cast<int>(r % PackedQuantWeight::kRows);
  const uint8_t* block = w.data() + rb * w.block_bytes();
  uint32_t q = 0;
  for (int p = 0; p < w.num_planes(); ++p) {
    const int b = w.plane_bits(p);
    const uint8_t* plane = block + w.plane_offset(p);
    uint32_t v;
    if (b == 8) {
      v = plane[(j / 32) * 32 * PackedQuantWeight::kRows + rr * 32 + j % 32];
    } else {
      const int64_t unit = 256 / b;
      const int64_t u = j / unit, pos = (j % unit) / 8, lane = j % 8;
      uint32_t word;
      std::memcpy(&word, plane + (u * PackedQuantWeight::kRows + rr) * 32 + lane * 4, 4);
      v = (word >> (b * pos)) & ((1u << b) - 1u);
    }
    q |= v << w.plane_shift(p);
  }
  return q;
}

}  // namespace

void PackedQuantWeight::Free::operator()(uint8_t* p) const { std::free(p); }

void quantize_affine(const float* w,
                     int64_t n,
                     int64_t k,
                     int bits,
                     int group_size,
                     uint32_t* out_w,
                     void* out_scales,
                     void* out_biases,
                     Dtype scale_dtype) {
  const float n_bins = static_cast<float>((1 << bits) - 1);
  const float eps = 1e-7f;
  const int64_t groups = k / group_size;
  const int64_t words = k * bits / 32;
  auto* out_bytes = reinterpret_cast<uint8_t*>(out_w);
  std::memset(out_w, 0, static_cast<size_t>(n * words) * 4);
  // Rows are independent: split them over the pool (conversion of whole checkpoints).
  detail::parallel_for_on(ThreadPool::global(), n, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      uint8_t* row_bytes = out_bytes + r * words * 4;
      for (int64_t g = 0; g < groups; ++g) {
        const float* src = w + r * k + g * group_size;
        float w_min = std::numeric_limits<float>::infinity();
        float w_max = -w_min;
        for (int j = 0; j < group_size; ++j) {
          w_max = std::max(w_max, src[j]);
          w_min = std::min(w_min, src[j]);
        }
        const bool mask = std::abs(w_min) > std::abs(w_max);
        float scale = std::max((w_max - w_min) / n_bins, eps);
        scale = mask ? scale : -scale;
        const float edge = mask ? w_min : w_max;
        const float q0 = std::rint(edge / scale);
        float bias = 0.0f;
        if (q0 != 0.0f) {
          scale = edge / q0;
          bias = edge;
        }
        for (int j = 0; j < group_size; ++j) {
          float q = std::rint((src[j] - bias) / scale);
          q = std::min(std::max(q, 0.0f), n_bins);
          const uint32_t qi = static_cast<uint32_t>(q);
          const int64_t bit = (g * group_size + j) * bits;
          const uint32_t shifted = qi << (bit & 7);
          row_bytes[bit >> 3] |= static_cast<uint8_t>(shifted & 0xffu);
          if ((bit & 7) + bits > 8) row_bytes[(bit >> 3) + 1] |= static_cast<uint8_t>(shifted >> 8);
        }
        store_scalar(out_scales, scale_dtype, r * groups + g, scale);
        store_scalar(out_biases, scale_dtype, r * groups + g, bias);
      }
    }
  });
}

void dequantize_affine(
    const QuantView& w, int64_t row_begin, int64_t row_end, float* out, int64_t ldo) {
  const int64_t ws = w_stride_of(w), ss = s_stride_of(w);
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint32_t* row = w.w + r * ws;
    float* dst = out + (r - row_begin) * ldo;
    for (int64_t g = 0; g < w.k / w.group_size; ++g) {
      const float s = detail::load_scalar(w.scales, w.scale_dtype, r * ss + g);
      const float b = detail::load_scalar(w.biases, w.scale_dtype, r * ss + g);
      for (int64_t j = g * w.group_size; j < (g + 1) * w.group_size; ++j)
        dst[j] = s * static_cast<float>(detail::mlx_q(row, w.bits, j)) + b;
    }
  }
}

void quantized_matmul_reference(
    const float* x, int64_t ldx, const QuantView& w, float* y, int64_t ldy, int64_t m) {
  const int64_t ws = w_stride_of(w), ss = s_stride_of(w);
  for (int64_t i = 0; i < m; ++i) {
    const float* xr = x + i * ldx;
    for (int64_t r = 0; r < w.n; ++r) {
      const uint32_t* row = w.w + r * ws;
      float acc = 0.0f;
      for (int64_t j = 0; j < w.k; ++j) {
        const int64_t g = j / w.group_size;
        const float s = detail::load_scalar(w.scales, w.scale_dtype, r * ss + g);
        const float b = detail::load_scalar(w.biases, w.scale_dtype, r * ss + g);
        acc += xr[j] * (s * static_cast<float>(detail::mlx_q(row, w.bits, j)) + b);
      }
      y[i * ldy + r] = acc;
    }
  }
}

void quantized_matmul(const float* x,
                      int64_t ldx,
                      const QuantView& w,
                      float* y,
                      int64_t ldy,
                      int64_t m,
                      ThreadPool* pool) {
  if (m <= 0 || w.n <= 0) return;
  ThreadPool& tp = pool ? *pool : ThreadPool::global();
  if (cpu_features().use_avx2()) {
    detail::quantized_matmul_view_avx2(x, ldx, w, y, ldy, m, tp);
    return;
  }
  detail::parallel_for_on(tp, w.n, 16, [&](int64_t r0, int64_t r1) {
    QuantView part = w;
    part.n = r1 - r0;
    part.w = w.w + r0 * w_stride_of(w);
    part.w_stride = w_stride_of(w);
    part.s_stride = s_stride_of(w);
    const int64_t soff = r0 * s_stride_of(w) * static_cast<int64_t>(dtype_size(w.scale_dtype));
    part.scales = static_cast<const uint8_t*>(w.scales) + soff;
    part.biases = static_cast<const uint8_t*>(w.biases) + soff;
    quantized_matmul_reference(x, ldx, part, y + r0, ldy, m);
  });
}

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
PackedQuantWeight pack_quantized(const QuantView& w) {
  PackedQuantWeight p;
  constexpr int R = PackedQuantWeight::kRows;
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
  std::memset(p.data_.get(), 0, p.bytes_);

  const int64_t ws = w_stride_of(w), ss = s_stride_of(w);
  // Rows are independent (each writes its own 32-byte slots): split blocks over threads.
  detail::parallel_for_on(ThreadPool::global(), blocks, 8, [&](int64_t b0, int64_t b1) {
    std::vector<uint8_t> q(static_cast<size_t>(p.k_padded_), 0);
    for (int64_t r = b0 * R; r < std::min(w.n, b1 * R); ++r) {
      uint8_t* block = p.data_.get() + (r / R) * p.block_bytes_;
      const int rr = static_cast<int>(r % R);
      unpack_row(w.w + r * ws, w.bits, w.k, q.data());
      for (int pl = 0; pl < p.num_planes_; ++pl) {
        const int b = p.plane_bits_[pl], sh = p.plane_shift_[pl];
        const uint32_t mask = (1u << b) - 1u;
        uint8_t* plane = block + p.plane_offset_[pl];
        if (b == 8) {
          for (int64_t j = 0; j < w.k; ++j)
            plane[(j / 32) * 32 * R + rr * 32 + j % 32] =
                static_cast<uint8_t>(q[static_cast<size_t>(j)] ^ 0x80u);
          continue;
        }
        const int64_t unit = 256 / b, positions = 32 / b;
        for (int64_t u = 0; u * unit < w.k; ++u) {
          uint32_t lanes[8];
          for (int lane = 0; lane < 8; ++lane) {
            uint32_t word = 0;
            for (int64_t pos = 0; pos < positions; ++pos) {
              const uint32_t v = (q[static_cast<size_t>(u * unit + pos * 8 + lane)] >> sh) & mask;
              word |= v << (b * pos);
            }
            lanes[lane] = word;
          }
          std::memcpy(plane + (u * R + rr) * 32, lanes, 32);
        }
      }
      for (int64_t g = 0; g < groups; ++g) {
        const int64_t src = (r * ss + g) * ssize;
        std::memcpy(block + p.scales_offset_ + (g * R + rr) * ssize,
                    static_cast<const uint8_t*>(w.scales) + src, static_cast<size_t>(ssize));
        std::memcpy(block + p.biases_offset_ + (g * R + rr) * ssize,
                    static_cast<const uint8_t*>(w.biases) + src, static_cast<size_t>(ssize));
      }
    }
  });
  return p;
}

void dequantize_packed(
    const PackedQuantWeight& w, int64_t row_begin, int64_t row_end, float* out, int64_t ldo) {
  constexpr int R = PackedQuantWeight::kRows;
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
  if (cpu_features().use_avx2()) {
    detail::quantized_matmul_packed_avx2(x, ldx, w, y, ldy, m, options, tp);
    return;
  }
  // Scalar path over the packed layout (also checks the layout in tests).
  constexpr int R = PackedQuantWeight::kRows;
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

}  // namespace lmx::cpu
