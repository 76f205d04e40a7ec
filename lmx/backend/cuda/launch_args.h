// The argument structs of the CUDA kernels' launch functions: plain C++17 with no lmx
// includes (nvcc compiles the .cu files as C++17), filled in by cuda_backend.cpp from the
// backend seam's structs (lmx/core/kernel_args.h), whose meaning they keep.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace lmx::cuda::detail {

// lmx::Dtype's values (cuda_backend.cpp checks that they agree).
enum DtypeCode : int { kF32 = 0, kF16, kBF16, kI32, kI64, kU8, kU32, kBool };

constexpr int kMaxRank = 8;

struct Operand {
  void* data = nullptr;
  int dtype = kF32;
  int64_t strides[kMaxRank] = {};
};

// kernels::ElementwiseArgs.
struct Elementwise {
  int rank = 1;
  int64_t shape[kMaxRank] = {};
  int64_t numel = 0;
  Operand out;
  Operand in[3];
};

// kernels::GemmArgs.
struct Gemm {
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1.0f, beta = 0.0f;
  const float* a = nullptr;
  int64_t a_rs = 0, a_cs = 1;
  const float* b = nullptr;
  int64_t b_rs = 0, b_cs = 1;
  float* c = nullptr;
  int64_t c_rs = 0, c_cs = 1;
  int64_t batch = 1;
  int64_t a_bs = 0, b_bs = 0, c_bs = 0;
};

// An MLX affine-quantized matrix [n, k] (kernels::QuantView with its strides resolved).
struct Quant {
  const uint32_t* w = nullptr;
  const void* scales = nullptr;
  const void* biases = nullptr;
  int scale_dtype = kF32;
  int64_t n = 0, k = 0;
  int bits = 4, group_size = 64;
  int64_t w_stride = 0, s_stride = 0;
  int mode = 0;  // lmx::QuantMode's value: 0 affine; 1 mxfp4, 2 mxfp8, 3 nvfp4 (u8 scales, no biases)
};

// A dense f16 / bf16 matrix [n, k] with row stride ld (kernels::DenseWeightView).
struct Dense {
  const uint16_t* w = nullptr;
  int dtype = kBF16;
  int64_t n = 0, k = 0, ld = 0;
};

// Matrices sharing one x in one matvec launch: target t gets the blocks
// [first_block[t], first_block[t + 1]).
constexpr int kMaxMatvecTargets = 4;
template <class Matrix>
struct MatvecTargets {
  Matrix q[kMaxMatvecTargets];
  float* y[kMaxMatvecTargets] = {};
  int64_t ldy[kMaxMatvecTargets] = {};
  unsigned first_block[kMaxMatvecTargets + 1] = {};
  int count = 0;
};
using QuantTargets = MatvecTargets<Quant>;
// How a one-row decode matvec makes its x (kernels::InputPrologue): kind 0 x as given; 1
// act(x) * up (kernels::Activation's value); 2 x * rsqrt(mean(x^2) + eps) * w (w + 1 where
// unit_offset; 1 where w is null) of x + residual where residual is set, that sum written
// to sum (by the first block).
struct XPrologue {
  int kind = 0;
  int act = 0;
  const float* up = nullptr;
  const void* w = nullptr;
  int w_dtype = kF32;
  bool unit_offset = false;
  float eps = 0.0f;
  const float* residual = nullptr;
  float* sum = nullptr;
};
using DenseTargets = MatvecTargets<Dense>;

// kernels::RopeOptions.
struct Rope {
  int64_t batch = 1, heads = 1, seq = 1, head_dim = 0;
  int64_t x_strides[4] = {}, out_strides[4] = {};
  int64_t rotary_dim = 0;
  bool traditional = false;
  const float* inv_freq = nullptr;
  int64_t offset = 0;
  const int64_t* batch_offsets = nullptr;
  const int64_t* positions = nullptr;
  float mscale = 1.0f;
};

// Quantized rows of a KV cache (kernels::QuantizedRows).
struct QuantRows {
  const uint32_t* w = nullptr;
  const float* scales = nullptr;
  const float* biases = nullptr;
  int64_t w_strides[3] = {}, s_strides[3] = {};
  int bits = 8;
};

// kernels::AttentionArgs + AttentionOptions, or QuantizedAttentionArgs when `quantized`.
struct Attention {
  int64_t batch = 1, q_heads = 1, kv_heads = 1, q_len = 1, kv_len = 0, head_dim = 0, v_head_dim = 0;
  const float* q = nullptr;
  int64_t q_strides[4] = {};
  const void* k = nullptr;
  int64_t k_strides[4] = {};
  const void* v = nullptr;
  int64_t v_strides[4] = {};
  int kv_dtype = kF32;
  bool quantized = false;
  QuantRows qk, qv;
  int group_size = 64;
  float* out = nullptr;
  int64_t out_strides[4] = {};
  float scale = 1.0f;
  bool causal = false;
  int64_t q_offset = 0, window = 0;
  const float* mask = nullptr;
  int64_t mask_strides[4] = {};
  float softcap = 0.0f;
  const float* sinks = nullptr;
};

}  // namespace lmx::cuda::detail
