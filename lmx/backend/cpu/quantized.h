// MLX affine-quantized weights on raw pointers: quantize / dequantize exactly as MLX
// does, y = x @ dequant(W)^T without materializing W, and a load-time repacked layout
// (PackedQuantWeight) that the fast matvec and GEMM read.
//
// MLX layout (what mlx-community checkpoints store): `weight` uint32 [n, k*bits/32], the
// k inputs of a row packed as one little-endian bit stream, lowest bits first (element j
// of a row occupies bits [j*bits, (j+1)*bits) of the row's bytes; for bits 3/5/6 values
// straddle words); `scales` and `biases` [n, k/group] in f32/f16/bf16;
// w[r, j] = scales[r, j/group] * q[r, j] + biases[r, j/group].
// bits in {2, 3, 4, 5, 6, 8}, group in {32, 64, 128}, k a multiple of group.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "lmx/core/kernel_args.h"

namespace lmx {
class ThreadPool;
}  // namespace lmx

namespace lmx::cpu {

using kernels::QuantView;



// Quantizes w [n, k] (row-major, contiguous) the way mlx.core.quantize does on the CPU:
// per group, scale = max((max - min) / (2^bits - 1), 1e-7) signed toward the edge of larger
// magnitude, the edge snapped to an integer q0 (scale = edge / q0, bias = edge; bias = 0
// when q0 == 0), q = clamp(rint((w - bias) / scale), 0, 2^bits - 1) with f32 scale and bias,
// which are then rounded to scale_dtype. out_w [n, k*bits/32], out_scales/out_biases
// [n, k/group] of scale_dtype.
void quantize_affine(const float* w,
                     int64_t n,
                     int64_t k,
                     int bits,
                     int group_size,
                     uint32_t* out_w,
                     void* out_scales,
                     void* out_biases,
                     Dtype scale_dtype);

// Rows [row_begin, row_end) of dequant(W) into out (row stride ldo floats):
// out[r - row_begin, j] = scale * q + bias (f32 multiply then add). Also serves quantized
// embedding lookups.
void dequantize_affine(
    const QuantView& w, int64_t row_begin, int64_t row_end, float* out, int64_t ldo);

// y[i, :] = x[i, :] @ dequant(W)^T on the MLX layout as stored (no repacking).
void quantized_matmul(const float* x,
                      int64_t ldx,
                      const QuantView& w,
                      float* y,
                      int64_t ldy,
                      int64_t m,
                      ThreadPool* pool = nullptr);

// The transposed use of a weight (quant_vecmat.cpp): each product's y[0, w.k) = x[0, w.n) @
// dequant(w), any mode, all products in one parallel region. 4- and 8-bit affine weights
// take y[j] = sum_r (x[r] * scale) * q + sum_r x[r] * bias per group (AVX2, or plain C++:
// the reference's values up to f32 rounding); the rest dequantize a row at a time.
using kernels::QuantVecmat;
void quantized_vecmat(std::span<const QuantVecmat> products, ThreadPool* pool = nullptr);
// Scalar reference: y[j] = sum over rows r, in order, of x[r] * w[r, j] in f32.
void quantized_vecmat_reference(const QuantVecmat& p);

// Scalar reference: per output, sum over k of x * (scale * q + bias) in f32.
void quantized_matmul_reference(
    const float* x, int64_t ldx, const QuantView& w, float* y, int64_t ldy, int64_t m);

// The weight repacked at load time for the fast kernels: rows in blocks of 4 interleaved
// so one pass reuses each activation load for 4 rows; quantized values laid out so an
// AND (or one shift) plus a convert yields 8 f32 lanes. Scales and biases keep their dtype.
// Owns its (64-byte aligned) buffer; movable, not copyable.
class PackedQuantWeight {
 public:
  PackedQuantWeight() = default;
  // A deep copy (benchmarks rotate over copies to defeat the caches).
  PackedQuantWeight clone() const;
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  int bits() const { return bits_; }
  int group_size() const { return group_size_; }
  Dtype scale_dtype() const { return scale_dtype_; }
  size_t bytes() const { return bytes_; }
  bool empty() const { return data_ == nullptr; }

  // Layout details for the kernels (described at the top of quant_pack.cpp).
  const uint8_t* data() const { return data_.get(); }
  int64_t k_padded() const { return k_padded_; }
  int64_t block_bytes() const { return block_bytes_; }
  int num_planes() const { return num_planes_; }
  int plane_bits(int p) const { return plane_bits_[p]; }
  int plane_shift(int p) const { return plane_shift_[p]; }
  int64_t plane_offset(int p) const { return plane_offset_[p]; }
  int64_t scales_offset() const { return scales_offset_; }
  int64_t biases_offset() const { return biases_offset_; }
  // Added to q before scaling (8-bit values are stored as q - 128, signed).
  int q_offset() const { return q_offset_; }

  static constexpr int kRows = 4;

 private:
  friend PackedQuantWeight pack_quantized(const QuantView& w);
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t[], Free> data_;
  size_t bytes_ = 0;
  int64_t n_ = 0, k_ = 0, k_padded_ = 0, block_bytes_ = 0;
  int bits_ = 0, group_size_ = 0, num_planes_ = 0, q_offset_ = 0;
  int plane_bits_[2] = {0, 0}, plane_shift_[2] = {0, 0};
  int64_t plane_offset_[2] = {0, 0};
  int64_t scales_offset_ = 0, biases_offset_ = 0;
  Dtype scale_dtype_ = Dtype::f32;
};

PackedQuantWeight pack_quantized(const QuantView& w);

// The MLX tensors back from the packed layout, bit for bit what pack_quantized read:
// out_w [n, k*bits/32], out_scales / out_biases [n, k/group] of w.scale_dtype(), contiguous.
// Lets a model keep only the packed copy and still save mlx-community checkpoints.
void unpack_quantized(const PackedQuantWeight& w,
                      uint32_t* out_w,
                      void* out_scales,
                      void* out_biases);

// dequantize_affine from the packed layout (same values, bit for bit), so a tied
// embedding / lm_head needs only the packed copy: rows [row_begin, row_end) into out.
void dequantize_packed(
    const PackedQuantWeight& w, int64_t row_begin, int64_t row_end, float* out, int64_t ldo);

// Rows of x from which the packed layout runs the GEMM (prefill) instead of the matvec.
// The GEMM repacks the weights it reads into int16 panels on every call, which pays off
// only over many rows; below this the matvec streams the weights once per call and runs
// each chunk of them for every row from L2 (batched decode: continuous batching's
// steps; short prompt chunks). kernel_report's "q4g64 batch" rows (Qwen ffn_up, 2
// threads, loaded machine): GEMM 18.9 / 18.9 / 21.1 / 29.8 ms at m = 4 / 8 / 16 / 32,
// the row-looped matvec 1.9 / 4.0 / 8.2 / 14.9 ms (about 17 ms of the GEMM's time is the
// repacking, so it only wins well past 32 rows). docs/performance.md.
#ifndef LMX_MIN_GEMM_ROWS
#define LMX_MIN_GEMM_ROWS 64
#endif
inline constexpr int64_t kMinGemmRows = LMX_MIN_GEMM_ROWS;

// Precision of the activations inside the packed kernels. The matvec (m < 4) has an int16 and
// an int8 path for the shapes listed; from m = 4 on (the matvec over rows below
// kMinGemmRows, the GEMM from there) x is rounded to int16 for either
// reduced precision, any bits and group size, and multiplies integers (vpmaddwd: 16
// multiply-adds per instruction where an FMA does 8).
using kernels::ActivationPrecision;

struct QuantMatmulOptions {
  // Shapes a reduced precision does not support run the f32 path.
  ActivationPrecision activations = ActivationPrecision::f32;
};

// y[i, :] = x[i, :] @ dequant(W)^T from the packed layout (same result as
// quantized_matmul_reference up to f32 rounding unless reduced activations are chosen).
void quantized_matmul(const float* x,
                      int64_t ldx,
                      const PackedQuantWeight& w,
                      float* y,
                      int64_t ldy,
                      int64_t m,
                      const QuantMatmulOptions& options = {},
                      ThreadPool* pool = nullptr);

// One weight of a quantized_matmul over a shared input: y [m, w.n()] with row stride ldy.
struct QuantMatmulTarget {
  const PackedQuantWeight* w = nullptr;
  float* y = nullptr;
  int64_t ldy = 0;
};

// quantized_matmul(x, ldx, *t.w, t.y, t.ldy, m, options, pool) for each target, bit for
// bit (each row runs the same kernel on the same prepared x). When m < 4 and the weights
// share k, bits and group size (decode's q/k/v, gate/up), x is prepared once and the rows
// of all the weights are split over the threads in one parallel region: one hand-off
// instead of one per weight, and small weights (k/v) no longer run alone on the calling
// thread. At most 32 targets share a region.
void quantized_matmul(const float* x,
                      int64_t ldx,
                      std::span<const QuantMatmulTarget> targets,
                      int64_t m,
                      const QuantMatmulOptions& options = {},
                      ThreadPool* pool = nullptr);

// One row each: quantized_matmul(xs[i], 0, *targets[i].w, targets[i].y, 0, 1, options, pool)
// for every i, bit for bit, each weight over its own input (a decode token's chosen
// experts: their down projections). With AVX2 and weights of one activation precision,
// each x is prepared once (inputs that are the same pointer and layout share it) and the
// rows of all the weights are split over the threads in one parallel region. At most 32
// targets share a region.
void quantized_matvec_each(std::span<const float* const> xs,
                           std::span<const QuantMatmulTarget> targets,
                           const QuantMatmulOptions& options = {},
                           ThreadPool* pool = nullptr);

}  // namespace lmx::cpu
