#include "lmx/backend/cpu/attention.h"

#include <algorithm>
#include <functional>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "lmx/backend/cpu/attention_avx2.h"
#include "lmx/backend/cpu/attention_avx512.h"
#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/base/error.h"
#include "lmx/core/half.h"

namespace lmx::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

float kv_at(const void* base, Dtype dt, int64_t idx) {
  switch (dt) {
    case Dtype::f16:
      return f16_to_f32(static_cast<const uint16_t*>(base)[idx]);
    case Dtype::bf16:
      return bf16_to_f32(static_cast<const uint16_t*>(base)[idx]);
    default:
      return static_cast<const float*>(base)[idx];
  }
}

// Visible keys [lo, hi) of a query at absolute position pos.
void visible_range(
    const AttentionArgs& a, const AttentionOptions& o, int64_t pos, int64_t* lo, int64_t* hi) {
  *lo = o.window > 0 ? std::max<int64_t>(0, pos - o.window + 1) : 0;
  *hi = o.causal ? std::min(a.kv_len, pos + 1) : a.kv_len;
}

// Naive attention for q heads [bh_begin, bh_end) of the flattened (batch, q_head) space.
void reference_heads(const AttentionArgs& a,
                     const AttentionOptions& o,
                     int64_t bh_begin,
                     int64_t bh_end) {
  const int64_t group = a.q_heads / a.kv_heads;
  std::vector<float> scores(static_cast<size_t>(a.kv_len));
  std::vector<double> acc(static_cast<size_t>(a.v_head_dim));
  for (int64_t bh = bh_begin; bh < bh_end; ++bh) {
    const int64_t b = bh / a.q_heads, h = bh % a.q_heads, kvh = h / group;
    for (int64_t i = 0; i < a.q_len; ++i) {
      const float* q = a.q + b * a.q_strides[0] + h * a.q_strides[1] + i * a.q_strides[2];
      int64_t lo, hi;
      visible_range(a, o, o.q_offset + i, &lo, &hi);
      float m = o.sinks ? o.sinks[h] : kNegInf;
      for (int64_t j = 0; j < a.kv_len; ++j) {
        float s = kNegInf;
        if (j >= lo && j < hi) {
          const int64_t kb = b * a.k_strides[0] + kvh * a.k_strides[1] + j * a.k_strides[2];
          double dot = 0.0;
          for (int64_t d = 0; d < a.head_dim; ++d) {
            dot += static_cast<double>(q[d * a.q_strides[3]]) *
                   kv_at(a.k, a.kv_dtype, kb + d * a.k_strides[3]);
          }
          s = static_cast<float>(dot) * o.scale;
          if (o.softcap > 0.0f) s = o.softcap * std::tanh(s / o.softcap);
          if (o.mask) {
            s += o.mask[b * o.mask_strides[0] + h * o.mask_strides[1] + i * o.mask_strides[2] +
                        j * o.mask_strides[3]];
          }
        }
        scores[static_cast<size_t>(j)] = s;
        m = std::max(m, s);
      }
      float* out = a.out + b * a.out_strides[0] + h * a.out_strides[1] + i * a.out_strides[2];
      std::fill(acc.begin(), acc.end(), 0.0);
      double denom = 0.0;
      if (m != kNegInf) {
        if (o.sinks) denom += std::exp(static_cast<double>(o.sinks[h]) - m);
        for (int64_t j = 0; j < a.kv_len; ++j) {
          const float s = scores[static_cast<size_t>(j)];
          if (s == kNegInf) continue;
          const double p = std::exp(static_cast<double>(s) - m);
          denom += p;
          const int64_t vb = b * a.v_strides[0] + kvh * a.v_strides[1] + j * a.v_strides[2];
          for (int64_t d = 0; d < a.v_head_dim; ++d) {
            acc[static_cast<size_t>(d)] += p * kv_at(a.v, a.kv_dtype, vb + d * a.v_strides[3]);
          }
        }
      }
      for (int64_t d = 0; d < a.v_head_dim; ++d) {
        out[d * a.out_strides[3]] =
            denom > 0.0 ? static_cast<float>(acc[static_cast<size_t>(d)] / denom) : 0.0f;
      }
    }
  }
}

#ifdef LMX_CPU_X86  // the flash path runs the AVX2 or AVX-512 block kernel
// Combines online-softmax partials (m, l, o of one row from `parts` key splits,
// `stride` floats apart) with the row's sink and writes the normalized row.
void finish_row(const float* m,
                const float* l,
                const float* o,
                int64_t parts,
                int64_t m_stride,
                int64_t o_stride,
                const float* sink,
                int64_t dv,
                float* out,
                int64_t out_stride) {
  float mx = sink ? *sink : kNegInf;
  for (int64_t p = 0; p < parts; ++p) mx = std::max(mx, m[p * m_stride]);
  if (mx == kNegInf) {
    for (int64_t d = 0; d < dv; ++d) out[d * out_stride] = 0.0f;
    return;
  }
  float denom = sink ? std::exp(*sink - mx) : 0.0f;
  float w[64];
  const int64_t np = std::min<int64_t>(parts, 64);
  for (int64_t p = 0; p < np; ++p) {
    w[p] = m[p * m_stride] == kNegInf ? 0.0f : std::exp(m[p * m_stride] - mx);
    denom += l[p * m_stride] * w[p];
  }
  const float inv = denom > 0.0f ? 1.0f / denom : 0.0f;
  for (int64_t d = 0; d < dv; ++d) {
    float acc = 0.0f;
    for (int64_t p = 0; p < np; ++p) {
      if (w[p] != 0.0f) acc += o[p * o_stride + d] * w[p];
    }
    out[d * out_stride] = acc * inv;
  }
}

// Per-thread scratch, kept across calls (the pool's threads persist).
float* thread_scratch(int64_t floats) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < floats) buf.resize(static_cast<size_t>(floats));
  return buf.data();
}

void flash_attention(const AttentionArgs& a, const AttentionOptions& o, ThreadPool& pool) {
  constexpr int64_t R = detail::kAttentionBlockRows;
  const int64_t group = a.q_heads / a.kv_heads;
  const int64_t rows = a.q_len * group;  // per (batch, kv head)
  const int64_t blocks = (rows + R - 1) / R;
  const int64_t items = a.batch * a.kv_heads * blocks;
  const int64_t dvp = detail::attention_row_floats(a.v_head_dim);
  const int64_t nthreads = pool.num_threads();
  // Decode with fewer (head, block) items than threads: split the keys too and merge.
  int64_t splits = 1;
  if (items < nthreads) {
    const int64_t max_splits = std::max<int64_t>(1, a.kv_len / (4 * detail::kAttentionTileKeys));
    splits = std::min<int64_t>({(2 * nthreads + items - 1) / items, max_splits, 64});
  }
  const int64_t tasks = items * splits;
  // Partials of every task when merging across splits; otherwise per thread.
  std::vector<float> parts;
  if (splits > 1) parts.resize(static_cast<size_t>(tasks * R * (2 + dvp)));
  const int64_t scratch_floats = detail::attention_scratch_floats(a) + R * (2 + dvp);
  const detail::AttentionBlockFn block_fn =
      cpu_features().use_avx512() ? detail::attention_block_avx512 : detail::kAttentionBlockAvx2;

  auto out_row = [&](int64_t b, int64_t kvh, int64_t row, const float** sink) {
    const int64_t i = row / group, h = kvh * group + row % group;
    *sink = o.sinks ? o.sinks + h : nullptr;
    return a.out + b * a.out_strides[0] + h * a.out_strides[1] + i * a.out_strides[2];
  };

  // Tiny problems (a small model's decode step) run on the calling thread: a parallel
  // region costs a few microseconds of hand-off, more than the work itself.
  const double work = static_cast<double>(a.batch) * static_cast<double>(a.q_heads) *
                      static_cast<double>(a.q_len) * static_cast<double>(a.kv_len) *
                      static_cast<double>(a.head_dim + a.v_head_dim);
  const int max_threads = work < 65536.0 ? 1 : 0;
  // Tasks handed out as threads come (a late worker is not waited for: with one KV head a
  // decode step has as many tasks as threads, and waiting for a worker that lost its core
  // cost DeepSeek-V3's decode more than the attention itself on a loaded machine).
  auto task = [&](int64_t t) {
    float* scratch = thread_scratch(scratch_floats);
    const int64_t item = t / splits, split = t % splits;
    detail::AttentionBlock blk;
    blk.batch = item / (a.kv_heads * blocks);
    blk.kv_head = (item / blocks) % a.kv_heads;
    blk.row0 = (item % blocks) * R;
    blk.rows = std::min(R, rows - blk.row0);
    blk.key_begin = a.kv_len * split / splits;
    blk.key_end = a.kv_len * (split + 1) / splits;
    float* m = splits > 1 ? parts.data() + t * R * (2 + dvp)
                          : scratch + (scratch_floats - R * (2 + dvp));
    float* l = m + R;
    float* acc = l + R;
    block_fn(a, o, blk, scratch, m, l, acc);
    if (splits == 1) {
      for (int64_t r = 0; r < blk.rows; ++r) {
        const float* sink;
        float* out = out_row(blk.batch, blk.kv_head, blk.row0 + r, &sink);
        finish_row(m + r, l + r, acc + r * dvp, 1, 0, 0, sink, a.v_head_dim, out,
                   a.out_strides[3]);
      }
    }
  };
  pool.run_dynamic(tasks, std::cref(task), max_threads);
  if (splits == 1) return;
  // Merge the key splits of each row.
  for (int64_t item = 0; item < items; ++item) {
    const int64_t b = item / (a.kv_heads * blocks), kvh = (item / blocks) % a.kv_heads;
    const int64_t row0 = (item % blocks) * R;
    const float* base = parts.data() + item * splits * R * (2 + dvp);
    const int64_t task_stride = R * (2 + dvp);
    for (int64_t r = 0; r < std::min(R, rows - row0); ++r) {
      const float* sink;
      float* out = out_row(b, kvh, row0 + r, &sink);
      finish_row(base + r, base + R + r, base + 2 * R + r * dvp, splits, task_stride, task_stride,
                 sink, a.v_head_dim, out, a.out_strides[3]);
    }
  }
}
#endif  // LMX_CPU_X86

}  // namespace

void attention_reference(const AttentionArgs& args, const AttentionOptions& options) {
  reference_heads(args, options, 0, args.batch * args.q_heads);
}

void scaled_dot_product_attention(const AttentionArgs& args,
                                  const AttentionOptions& options,
                                  ThreadPool& pool) {
  if (args.batch <= 0 || args.q_heads <= 0 || args.q_len <= 0 || args.v_head_dim <= 0) return;
  if (args.kv_heads <= 0 || args.q_heads % args.kv_heads != 0) {
    throw InvalidArgument("scaled_dot_product_attention: q_heads (" + std::to_string(args.q_heads) +
                          ") is not a multiple of kv_heads (" + std::to_string(args.kv_heads) +
                          ")");
  }
#ifdef LMX_CPU_X86
  if (cpu_features().use_avx2()) {
    flash_attention(args, options, pool);
    return;
  }
#endif
  pool.parallel_for(args.batch * args.q_heads, 1,
                    [&](int64_t b, int64_t e) { reference_heads(args, options, b, e); });
}

}  // namespace lmx::cpu
