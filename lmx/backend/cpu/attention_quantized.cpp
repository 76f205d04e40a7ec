#include "lmx/backend/cpu/attention_quantized.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "lmx/backend/cpu/quantized.h"
#include "lmx/base/error.h"

namespace lmx::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kKeyBlock = 64;

// Rows [j0, j0 + n) of head (b, h) dequantized into out [n, dim].
void dequantize_rows(const QuantizedRows& r,
                     int64_t dim,
                     int group,
                     int64_t b,
                     int64_t h,
                     int64_t j0,
                     int64_t n,
                     float* out) {
  QuantView view;
  view.w = r.w + b * r.w_strides[0] + h * r.w_strides[1] + j0 * r.w_strides[2];
  view.scales = r.scales + b * r.s_strides[0] + h * r.s_strides[1] + j0 * r.s_strides[2];
  view.biases = r.biases + b * r.s_strides[0] + h * r.s_strides[1] + j0 * r.s_strides[2];
  view.scale_dtype = Dtype::f32;
  view.n = n;
  view.k = dim;
  view.bits = r.bits;
  view.group_size = group;
  view.w_stride = r.w_strides[2];
  view.s_stride = r.s_strides[2];
  dequantize_affine(view, 0, n, out, dim);
}

}  // namespace

void quantized_scaled_dot_product_attention(const QuantizedAttentionArgs& a,
                                            const AttentionOptions& o,
                                            ThreadPool& pool) {
  LMX_ASSERT(a.q_heads % a.kv_heads == 0);
  const int64_t group = a.q_heads / a.kv_heads;
  const int64_t D = a.head_dim, Dv = a.v_head_dim;
  // Work items: (batch, kv head, query chunk); each reads its keys once per chunk for
  // every q head of the group.
  const int64_t q_chunk = std::max<int64_t>(1, std::min<int64_t>(a.q_len, 32));
  const int64_t chunks = (a.q_len + q_chunk - 1) / q_chunk;
  const int64_t items = a.batch * a.kv_heads * chunks;
  pool.parallel_for(items, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> kb(static_cast<size_t>(kKeyBlock * D)),
        vb(static_cast<size_t>(kKeyBlock * Dv));
    std::vector<float> s(static_cast<size_t>(kKeyBlock));
    std::vector<float> acc, m, l;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / (a.kv_heads * chunks);
      const int64_t hk = (item / chunks) % a.kv_heads;
      const int64_t i0 = (item % chunks) * q_chunk, i1 = std::min(a.q_len, i0 + q_chunk);
      const int64_t rows = group * (i1 - i0);  // (q head in group, query) pairs
      acc.assign(static_cast<size_t>(rows * Dv), 0.0f);
      m.assign(static_cast<size_t>(rows), kNegInf);
      l.assign(static_cast<size_t>(rows), 0.0f);
      for (int64_t g = 0; g < group; ++g) {
        if (!o.sinks) continue;
        for (int64_t i = i0; i < i1; ++i) {
          const size_t r = static_cast<size_t>(g * (i1 - i0) + (i - i0));
          m[r] = o.sinks[hk * group + g];
          l[r] = 1.0f;
        }
      }
      // Keys any query of the chunk can see.
      int64_t lo = 0, hi = a.kv_len;
      if (!o.mask) {
        if (o.causal) hi = std::min(a.kv_len, o.q_offset + i1);
        if (o.window > 0) lo = std::max<int64_t>(0, o.q_offset + i0 - o.window + 1);
      }
      for (int64_t j0 = lo; j0 < hi; j0 += kKeyBlock) {
        const int64_t n = std::min(kKeyBlock, hi - j0);
        dequantize_rows(a.k, D, a.group_size, b, hk, j0, n, kb.data());
        bool v_ready = false;
        for (int64_t g = 0; g < group; ++g) {
          const int64_t h = hk * group + g;
          for (int64_t i = i0; i < i1; ++i) {
            const size_t r = static_cast<size_t>(g * (i1 - i0) + (i - i0));
            const float* q = a.q + b * a.q_strides[0] + h * a.q_strides[1] + i * a.q_strides[2];
            const int64_t pos = o.q_offset + i;
            float block_max = kNegInf;
            for (int64_t j = 0; j < n; ++j) {
              const int64_t kj = j0 + j;
              float sc = kNegInf;
              const bool visible =
                  (!o.causal || kj <= pos) && (o.window <= 0 || pos - kj < o.window);
              if (visible) {
                const float* k = kb.data() + j * D;
                float dot = 0.0f;
                for (int64_t d = 0; d < D; ++d) dot += q[d * a.q_strides[3]] * k[d];
                sc = dot * o.scale;
                if (o.softcap > 0) sc = o.softcap * std::tanh(sc / o.softcap);
                if (o.mask) {
                  sc += o.mask[b * o.mask_strides[0] + h * o.mask_strides[1] +
                               i * o.mask_strides[2] + kj * o.mask_strides[3]];
                }
              }
              s[static_cast<size_t>(j)] = sc;
              block_max = std::max(block_max, sc);
            }
            if (block_max == kNegInf) continue;
            if (!v_ready) {
              dequantize_rows(a.v, Dv, a.group_size, b, hk, j0, n, vb.data());
              v_ready = true;
            }
            const float new_m = std::max(m[r], block_max);
            const float correction = m[r] == kNegInf ? 0.0f : std::exp(m[r] - new_m);
            float* out_acc = acc.data() + r * static_cast<size_t>(Dv);
            for (int64_t d = 0; d < Dv; ++d) out_acc[d] *= correction;
            float sum = l[r] * correction;
            for (int64_t j = 0; j < n; ++j) {
              if (s[static_cast<size_t>(j)] == kNegInf) continue;
              const float p = std::exp(s[static_cast<size_t>(j)] - new_m);
              sum += p;
              const float* v = vb.data() + j * Dv;
              for (int64_t d = 0; d < Dv; ++d) out_acc[d] += p * v[d];
            }
            m[r] = new_m;
            l[r] = sum;
          }
        }
      }
      for (int64_t g = 0; g < group; ++g) {
        const int64_t h = hk * group + g;
        for (int64_t i = i0; i < i1; ++i) {
          const size_t r = static_cast<size_t>(g * (i1 - i0) + (i - i0));
          float* out = a.out + b * a.out_strides[0] + h * a.out_strides[1] + i * a.out_strides[2];
          const float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
          const float* src = acc.data() + r * static_cast<size_t>(Dv);
          for (int64_t d = 0; d < Dv; ++d) out[d * a.out_strides[3]] = src[d] * inv;
        }
      }
    }
  });
}

}  // namespace lmx::cpu
