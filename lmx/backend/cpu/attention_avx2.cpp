// AVX2 flash-attention block: a few query rows of one (batch, kv head) against a key
// range, tile by tile with an online softmax. See vec_math_avx2.h for the rules of
// AVX2 files.
//
// Layout of one tile's scores: s[j * 4 + r] (key-major, the 4 block rows in 4 lanes),
// so two keys fill one ymm register and the softmax update runs on whole registers.
#include "lmx/backend/cpu/attention_avx2.h"

#include <immintrin.h>

#include "lmx/backend/cpu/vec_math_avx2.h"

namespace lmx::cpu::detail {

namespace {

constexpr int64_t R = kAttentionBlockRows;
constexpr int64_t T = kAttentionTileKeys;
constexpr float kNegInf = -__builtin_inff();

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

inline float scalar_at(const void* base, Dtype dt, int64_t idx) {
  if (dt == Dtype::f16) return _cvtsh_ss(static_cast<const uint16_t*>(base)[idx]);
  if (dt == Dtype::bf16) {
    const uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(base)[idx]) << 16;
    return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(static_cast<int>(bits))));
  }
  return static_cast<const float*>(base)[idx];
}

// dst[0..n) = src row (element stride `stride`) widened to f32; dst[n..np) = 0.
template <Dtype D>
void widen_row(const void* src, int64_t stride, int64_t n, int64_t np, float* dst) {
  int64_t d = 0;
  if (stride == 1) {
    for (; d + 8 <= n; d += 8) _mm256_storeu_ps(dst + d, avx2::load8<D>(src, d));
    if (d < n) {
      _mm256_storeu_ps(dst + d, avx2::load_tail<D>(src, d, n - d));
      d += 8;
    }
  } else {
    for (; d < n; ++d) dst[d] = scalar_at(src, D, d * stride);
  }
  for (; d < np; ++d) dst[d] = 0.0f;
}

// Scores of the 4 block rows (q: [4][dp], zero padded) against keys k0 and k1 (rows
// of dp elements of type K, widened on the fly), scaled; stored as
// s[0..8) = {k0: r0..r3, k1: r0..r3}.
template <Dtype K>
inline void score_pair(
    const float* q, int64_t dp, const void* k0, const void* k1, __m256 scale, float* s) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (int64_t d = 0; d < dp; d += 8) {
    const __m256 x0 = avx2::load8<K>(k0, d), x1 = avx2::load8<K>(k1, d);
    const __m256 q0 = _mm256_loadu_ps(q + d), q1 = _mm256_loadu_ps(q + dp + d);
    const __m256 q2 = _mm256_loadu_ps(q + 2 * dp + d), q3 = _mm256_loadu_ps(q + 3 * dp + d);
    a0 = _mm256_fmadd_ps(q0, x0, a0);
    a1 = _mm256_fmadd_ps(q1, x0, a1);
    a2 = _mm256_fmadd_ps(q2, x0, a2);
    a3 = _mm256_fmadd_ps(q3, x0, a3);
    a4 = _mm256_fmadd_ps(q0, x1, a4);
    a5 = _mm256_fmadd_ps(q1, x1, a5);
    a6 = _mm256_fmadd_ps(q2, x1, a6);
    a7 = _mm256_fmadd_ps(q3, x1, a7);
  }
  // Reduce the 8 accumulators to one register of their 8 sums, in order.
  const __m256 t0 = _mm256_hadd_ps(a0, a1), t1 = _mm256_hadd_ps(a2, a3);
  const __m256 t2 = _mm256_hadd_ps(a4, a5), t3 = _mm256_hadd_ps(a6, a7);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  const __m256 sum =
      _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
  _mm256_storeu_ps(s, _mm256_mul_ps(sum, scale));
}

// Touches `bytes` bytes from p into the cache ahead of use.
inline void prefetch_row(const char* p, int64_t bytes) {
  for (int64_t b = 0; b < bytes; b += 64) _mm_prefetch(p + b, _MM_HINT_T0);
}

// Scores of a tile of tn keys, key j at element offset j * kstride of kt. While it
// runs it prefetches the next tile's keys and this tile's values (`next_k`,
// `this_v`, rows of `k_bytes` / `v_bytes` bytes; null when not wanted): decode
// streams the cache once, and those loads would otherwise stall the FMAs.
template <Dtype K>
inline void score_tile(const float* q,
                       int64_t dp,
                       const void* kt,
                       int64_t kstride,
                       int64_t tn,
                       __m256 scale,
                       float* s,
                       const char* next_k,
                       int64_t next_k_rows,
                       int64_t k_row_bytes,
                       int64_t k_bytes,
                       const char* this_v,
                       int64_t v_row_bytes,
                       int64_t v_bytes) {
  const int64_t esize = K == Dtype::f32 ? 4 : 2;
  const char* base = static_cast<const char*>(kt);
  for (int64_t j = 0; j < tn; j += 2) {
    if (next_k) {
      for (int64_t jj = j; jj < j + 2 && jj < next_k_rows; ++jj) {
        prefetch_row(next_k + jj * k_row_bytes, k_bytes);
      }
    }
    if (this_v) {
      for (int64_t jj = j; jj < j + 2 && jj < tn; ++jj)
        prefetch_row(this_v + jj * v_row_bytes, v_bytes);
    }
    const char* k0 = base + j * kstride * esize;
    score_pair<K>(q, dp, k0, j + 1 < tn ? k0 + kstride * esize : k0, scale, s + j * R);
  }
}

// o[r][0..dvp) = o[r] * alpha[r] + sum_j p[j][r] v[j]   (v rows of type V, `vstride`
// elements apart, widened on the fly; each v element is loaded once per block).
template <Dtype V>
inline void accumulate_pv(const float* p,
                          int64_t tn,
                          const void* vt,
                          int64_t vstride,
                          int64_t dvp,
                          const float* alpha,
                          float* o) {
  const int64_t esize = V == Dtype::f32 ? 4 : 2;
  const char* base = static_cast<const char*>(vt);
  int64_t c = 0;
  for (; c + 16 <= dvp; c += 16) {
    __m256 acc[R][2];
    for (int64_t r = 0; r < R; ++r) {
      const __m256 al = _mm256_set1_ps(alpha[r]);
      acc[r][0] = _mm256_mul_ps(_mm256_loadu_ps(o + r * dvp + c), al);
      acc[r][1] = _mm256_mul_ps(_mm256_loadu_ps(o + r * dvp + c + 8), al);
    }
    for (int64_t j = 0; j < tn; ++j) {
      const char* vj = base + j * vstride * esize;
      const __m256 v0 = avx2::load8<V>(vj, c), v1 = avx2::load8<V>(vj, c + 8);
      for (int64_t r = 0; r < R; ++r) {
        const __m256 pr = _mm256_broadcast_ss(p + j * R + r);
        acc[r][0] = _mm256_fmadd_ps(pr, v0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(pr, v1, acc[r][1]);
      }
    }
    for (int64_t r = 0; r < R; ++r) {
      _mm256_storeu_ps(o + r * dvp + c, acc[r][0]);
      _mm256_storeu_ps(o + r * dvp + c + 8, acc[r][1]);
    }
  }
  if (c < dvp) {  // one 8-float column chunk left
    __m256 acc[R];
    for (int64_t r = 0; r < R; ++r) {
      acc[r] = _mm256_mul_ps(_mm256_loadu_ps(o + r * dvp + c), _mm256_set1_ps(alpha[r]));
    }
    for (int64_t j = 0; j < tn; ++j) {
      const __m256 v0 = avx2::load8<V>(base + j * vstride * esize, c);
      for (int64_t r = 0; r < R; ++r) {
        acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(p + j * R + r), v0, acc[r]);
      }
    }
    for (int64_t r = 0; r < R; ++r) _mm256_storeu_ps(o + r * dvp + c, acc[r]);
  }
}

template <Dtype D>
void block_impl(const AttentionArgs& a,
                const AttentionOptions& opt,
                const AttentionBlock& blk,
                float* scratch,
                float* m_out,
                float* l_out,
                float* o) {
  const int64_t group = a.q_heads / a.kv_heads;
  const int64_t dp = round_up8(a.head_dim), dvp = round_up8(a.v_head_dim);
  float* qs = scratch;      // [R][dp]
  float* ks = qs + R * dp;  // [T][dp]
  float* vs = ks + T * dp;  // [T][dvp]
  float* s = vs + T * dvp;  // [T + 2][R]

  // Rows: query, head, visible key range (clipped to the task's key range).
  int64_t qi[R], qh[R], lo[R], hi[R];
  int64_t key_lo = blk.key_end, key_hi = blk.key_begin;
  for (int64_t r = 0; r < R; ++r) {
    if (r < blk.rows) {
      const int64_t row = blk.row0 + r;
      qi[r] = row / group;
      qh[r] = blk.kv_head * group + row % group;
      const int64_t pos = opt.q_offset + qi[r];
      lo[r] = opt.window > 0 ? max64(0, pos - opt.window + 1) : 0;
      hi[r] = opt.causal ? min64(a.kv_len, pos + 1) : a.kv_len;
      lo[r] = max64(lo[r], blk.key_begin);
      hi[r] = min64(hi[r], blk.key_end);
      if (lo[r] < hi[r]) {
        key_lo = min64(key_lo, lo[r]);
        key_hi = max64(key_hi, hi[r]);
      }
      const float* q =
          a.q + blk.batch * a.q_strides[0] + qh[r] * a.q_strides[1] + qi[r] * a.q_strides[2];
      widen_row<Dtype::f32>(q, a.q_strides[3], a.head_dim, dp, qs + r * dp);
    } else {
      // Padding rows: zero queries, every key treated as visible; results unused.
      qi[r] = qh[r] = 0;
      lo[r] = blk.key_begin;
      hi[r] = blk.key_end;
      for (int64_t d = 0; d < dp; ++d) qs[r * dp + d] = 0.0f;
    }
  }

  __m128 m = _mm_set1_ps(kNegInf), l = _mm_setzero_ps();
  for (int64_t i = 0; i < R * dvp; ++i) o[i] = 0.0f;

  const char* kbase = static_cast<const char*>(a.k);
  const char* vbase = static_cast<const char*>(a.v);
  const int64_t esize = D == Dtype::f32 ? 4 : 2;
  const int64_t k_head = blk.batch * a.k_strides[0] + blk.kv_head * a.k_strides[1];
  const int64_t v_head = blk.batch * a.v_strides[0] + blk.kv_head * a.v_strides[1];
  const bool k_direct = a.k_strides[3] == 1 && a.head_dim % 8 == 0;
  const bool v_direct = a.v_strides[3] == 1 && a.v_head_dim % 8 == 0;
  const __m256 scale = _mm256_set1_ps(opt.scale);

  for (int64_t t0 = key_lo; t0 < key_hi; t0 += T) {
    const int64_t tn = min64(T, key_hi - t0);
    // Keys of this tile as f32 rows.
    // Keys are read in place (widened on the fly) when rows are contiguous and a whole
    // number of registers; otherwise gathered into an f32 tile first.
    const int64_t next_rows = min64(T, key_hi - (t0 + T));
    const char* next_k =
        k_direct && next_rows > 0 ? kbase + (k_head + (t0 + T) * a.k_strides[2]) * esize : nullptr;
    const char* this_v = v_direct ? vbase + (v_head + t0 * a.v_strides[2]) * esize : nullptr;
    if (k_direct) {
      score_tile<D>(qs, dp, kbase + (k_head + t0 * a.k_strides[2]) * esize, a.k_strides[2], tn,
                    scale, s, next_k, next_rows, a.k_strides[2] * esize, a.head_dim * esize, this_v,
                    a.v_strides[2] * esize, a.v_head_dim * esize);
    } else {
      for (int64_t j = 0; j < tn; ++j) {
        widen_row<D>(kbase + (k_head + (t0 + j) * a.k_strides[2]) * esize, a.k_strides[3],
                     a.head_dim, dp, ks + j * dp);
      }
      score_tile<Dtype::f32>(qs, dp, ks, dp, tn, scale, s, nullptr, 0, 0, 0, this_v,
                             a.v_strides[2] * esize, a.v_head_dim * esize);
    }
    const int64_t nvec = (tn * R + 7) / 8;  // whole registers over s (may read one pad key)
    if (opt.softcap > 0.0f) {
      const __m256 cap = _mm256_set1_ps(opt.softcap), inv = _mm256_set1_ps(1.0f / opt.softcap);
      for (int64_t k = 0; k < nvec; ++k) {
        const __m256 x = _mm256_loadu_ps(s + 8 * k);
        _mm256_storeu_ps(s + 8 * k, _mm256_mul_ps(cap, avx2::tanh(_mm256_mul_ps(x, inv))));
      }
    }
    if (opt.mask) {
      for (int64_t r = 0; r < blk.rows; ++r) {
        const float* mr = opt.mask + blk.batch * opt.mask_strides[0] + qh[r] * opt.mask_strides[1] +
                          qi[r] * opt.mask_strides[2] + t0 * opt.mask_strides[3];
        for (int64_t j = 0; j < tn; ++j) s[j * R + r] += mr[j * opt.mask_strides[3]];
      }
    }
    for (int64_t r = 0; r < R; ++r) {
      if (t0 >= lo[r] && t0 + tn <= hi[r]) continue;  // whole tile visible
      for (int64_t j = 0; j < tn; ++j) {
        if (t0 + j < lo[r] || t0 + j >= hi[r]) s[j * R + r] = kNegInf;
      }
    }
    if (tn & 1) {  // the pad key of an odd tile must not count
      for (int64_t r = 0; r < R; ++r) s[tn * R + r] = kNegInf;
    }
    // Online softmax: m' = max(m, max_j s), p = e^(s - m'), l' = l e^(m - m') + sum p.
    __m256 mx = _mm256_set1_ps(kNegInf);
    for (int64_t k = 0; k < nvec; ++k) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + 8 * k));
    const __m128 tile_max = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    const __m128 m_new = _mm_max_ps(m, tile_max);
    // A row with nothing visible so far keeps m = -inf; use 0 there so no -inf - -inf.
    const __m128 m_use =
        _mm_blendv_ps(m_new, _mm_setzero_ps(), _mm_cmpeq_ps(m_new, _mm_set1_ps(kNegInf)));
    const __m256 m_use2 = _mm256_set_m128(m_use, m_use);
    __m256 sum = _mm256_setzero_ps();
    for (int64_t k = 0; k < nvec; ++k) {
      const __m256 p = avx2::exp(_mm256_sub_ps(_mm256_loadu_ps(s + 8 * k), m_use2));
      _mm256_storeu_ps(s + 8 * k, p);
      sum = _mm256_add_ps(sum, p);
    }
    const __m128 tile_sum = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
    const __m128 alpha =
        _mm256_castps256_ps128(avx2::exp(_mm256_castps128_ps256(_mm_sub_ps(m, m_use))));
    l = _mm_add_ps(_mm_mul_ps(l, alpha), tile_sum);
    m = m_new;
    alignas(16) float alpha_s[R];
    _mm_store_ps(alpha_s, alpha);

    // o = o * alpha + p v, values in place or gathered like the keys.
    if (v_direct) {
      accumulate_pv<D>(s, tn, vbase + (v_head + t0 * a.v_strides[2]) * esize, a.v_strides[2], dvp,
                       alpha_s, o);
    } else {
      for (int64_t j = 0; j < tn; ++j) {
        widen_row<D>(vbase + (v_head + (t0 + j) * a.v_strides[2]) * esize, a.v_strides[3],
                     a.v_head_dim, dvp, vs + j * dvp);
      }
      accumulate_pv<Dtype::f32>(s, tn, vs, dvp, dvp, alpha_s, o);
    }
  }
  _mm_storeu_ps(m_out, m);
  _mm_storeu_ps(l_out, l);
}

}  // namespace

void attention_block_avx2(const AttentionArgs& args,
                          const AttentionOptions& options,
                          const AttentionBlock& block,
                          float* scratch,
                          float* m,
                          float* l,
                          float* o) {
  switch (args.kv_dtype) {
    case Dtype::f16:
      return block_impl<Dtype::f16>(args, options, block, scratch, m, l, o);
    case Dtype::bf16:
      return block_impl<Dtype::bf16>(args, options, block, scratch, m, l, o);
    default:
      return block_impl<Dtype::f32>(args, options, block, scratch, m, l, o);
  }
}

}  // namespace lmx::cpu::detail
