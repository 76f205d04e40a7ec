// Fused kernels of the decode step (fused_kernels.h).
#include "lmx/backend/cuda/fused_kernels.h"

#include "lmx/backend/cuda/dependent_launch.cuh"
#include "lmx/backend/cuda/device_values.cuh"

#include <algorithm>

namespace lmx::cuda::detail {
namespace {

template <bool kBf16>
__global__ void rope_append_kernel(RopeAppend r) {
  await_inputs();
  const int64_t half = r.rotary_dim / 2, per_row = r.head_dim - half;
  const int64_t rotated = (r.q_heads + r.kv_heads) * per_row;
  const int64_t total = rotated + r.kv_heads * r.v_head_dim;
  const int64_t pos = r.device_position ? *r.device_position : r.position;
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < total;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (t >= rotated) {  // v into the cache
      const int64_t i = t - rotated, h = i / r.v_head_dim, d = i % r.v_head_dim;
      store_kv<kBf16>(r.vbuf, h * r.vbuf_strides[1] + pos * r.vbuf_strides[2] + d * r.vbuf_strides[3],
                      r.v[h * r.v_strides[1] + d * r.v_strides[3]]);
      continue;
    }
    const int64_t hh = t / per_row, j = t % per_row;
    const bool is_q = hh < r.q_heads;
    const int64_t h = is_q ? hh : hh - r.q_heads;
    const float* xr = is_q ? r.q + h * r.q_strides[1] : r.k + h * r.k_strides[1];
    const int64_t xs = is_q ? r.q_strides[3] : r.k_strides[3];
    // q to q_out (f32), k to the cache (f32 or bf16): element i of this row.
    const int64_t y0 = is_q ? h * r.q_out_strides[1] : h * r.kbuf_strides[1] + pos * r.kbuf_strides[2];
    const int64_t ys = is_q ? r.q_out_strides[3] : r.kbuf_strides[3];
    auto put = [&](int64_t i, float value) {
      if (is_q) {
        r.q_out[y0 + i * ys] = value;
      } else {
        store_kv<kBf16>(r.kbuf, y0 + i * ys, value);
      }
    };
    if (j >= half) {  // past the rotary dims: copied through
      const int64_t d = r.rotary_dim + (j - half);
      put(d, xr[d * xs]);
      continue;
    }
    // The rope kernel's arithmetic (nn_kernels.cu), so the rotation is the same.
    const float angle = __fmul_rn(static_cast<float>(pos), r.inv_freq[j]);
    const float c = cosf(angle) * r.mscale, sn = sinf(angle) * r.mscale;
    const int64_t i0 = r.traditional ? 2 * j : j, i1 = r.traditional ? 2 * j + 1 : j + half;
    const float x0 = xr[i0 * xs], x1 = xr[i1 * xs];
    put(i0, x0 * c - x1 * sn);
    put(i1, x1 * c + x0 * sn);
  }
}

}  // namespace

cudaError_t launch_rope_append(const RopeAppend& r, cudaStream_t stream) {
  const int64_t total = (r.q_heads + r.kv_heads) * (r.head_dim - r.rotary_dim / 2) + r.kv_heads * r.v_head_dim;
  if (total <= 0) return cudaSuccess;
  const int64_t blocks = std::min<int64_t>((total + 255) / 256, 1024);
  return launch_early(r.bf16_buffers ? rope_append_kernel<true> : rope_append_kernel<false>,
                      static_cast<unsigned>(blocks), 256, 0, stream, r);
}

}  // namespace lmx::cuda::detail
