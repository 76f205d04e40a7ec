// AVX2 flash-attention block: a few query rows of one (batch, kv head) against a key
// range, tile by tile with an online softmax. See vec_math_avx2.h for the rules of
// AVX2 files.
//
// A block of NR rows (NR = 1, 2 or 4: the block's row count rounded up, so MHA decode
// (one row) and group-2 GQA do not pay for 4) works on NR rows x 8/NR keys per step,
// eight dot products reduced into one register. Layout of a tile's scores:
// s[j * NR + r] (key-major), so every register of s holds 8/NR keys of all NR rows and
// the online-softmax update runs on whole registers, lane L belonging to row L % NR.
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

// Touches `bytes` bytes from p into the cache ahead of use.
inline void prefetch_row(const char* p, int64_t bytes) {
  for (int64_t b = 0; b < bytes; b += 64) _mm_prefetch(p + b, _MM_HINT_T0);
}

// Combines the lanes of x that belong to the same row (lane L is row L % NR), so
// every lane ends up holding its row's max / sum.
template <int NR>
inline __m256 fold_max(__m256 x) {
  x = _mm256_max_ps(x, _mm256_permute2f128_ps(x, x, 1));
  if constexpr (NR <= 2) x = _mm256_max_ps(x, _mm256_permute_ps(x, 0x4E));
  if constexpr (NR == 1) x = _mm256_max_ps(x, _mm256_permute_ps(x, 0xB1));
  return x;
}
template <int NR>
inline __m256 fold_add(__m256 x) {
  x = _mm256_add_ps(x, _mm256_permute2f128_ps(x, x, 1));
  if constexpr (NR <= 2) x = _mm256_add_ps(x, _mm256_permute_ps(x, 0x4E));
  if constexpr (NR == 1) x = _mm256_add_ps(x, _mm256_permute_ps(x, 0xB1));
  return x;
}

// Scores of NR rows (q: [NR][dp], zero padded) against the 8/NR keys k[0..8/NR) (rows
// of dp elements of type K, widened on the fly), scaled; stored as
// s[kk * NR + r] for key kk, row r.
template <Dtype K, int NR>
inline void score_step(const float* q, int64_t dp, const char* const* k, __m256 scale, float* s) {
  constexpr int KPS = 8 / NR;
  __m256 a[8];
  for (int i = 0; i < 8; ++i) a[i] = _mm256_setzero_ps();
  for (int64_t d = 0; d < dp; d += 8) {
    __m256 qv[NR];
    for (int r = 0; r < NR; ++r) qv[r] = _mm256_loadu_ps(q + r * dp + d);
    for (int kk = 0; kk < KPS; ++kk) {
      const __m256 x = avx2::load8<K>(k[kk], d);
      for (int r = 0; r < NR; ++r) a[kk * NR + r] = _mm256_fmadd_ps(qv[r], x, a[kk * NR + r]);
    }
  }
  // Reduce the 8 accumulators to one register of their 8 sums, in order.
  const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  const __m256 sum =
      _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
  _mm256_storeu_ps(s, _mm256_mul_ps(sum, scale));
}

// Scores of a tile of tn keys (key j at byte offset j * k_row_bytes of kt), padded to
// a multiple of 8/NR keys by repeating the last key (the caller masks the pads).
// While it runs it prefetches the next tile's keys and this tile's values (null when
// not wanted): decode streams the cache once, and those misses would stall the FMAs.
template <Dtype K, int NR>
inline void score_tile(const float* q,
                       int64_t dp,
                       const char* kt,
                       int64_t k_row_bytes,
                       int64_t tn,
                       __m256 scale,
                       float* s,
                       const char* next_k,
                       int64_t next_k_rows,
                       int64_t k_bytes,
                       const char* this_v,
                       int64_t v_row_bytes,
                       int64_t v_bytes) {
  constexpr int KPS = 8 / NR;
  for (int64_t j = 0; j < tn; j += KPS) {
    const char* k[KPS];
    for (int kk = 0; kk < KPS; ++kk) k[kk] = kt + min64(j + kk, tn - 1) * k_row_bytes;
    for (int64_t jj = j; jj < j + KPS; ++jj) {
      if (next_k && jj < next_k_rows) prefetch_row(next_k + jj * k_row_bytes, k_bytes);
      if (this_v && jj < tn) prefetch_row(this_v + jj * v_row_bytes, v_bytes);
    }
    score_step<K, NR>(q, dp, k, scale, s + j * NR);
  }
}

// o[r][0..dvp) = o[r] * alpha[r] + sum_j p[j][r] v[j] for r < NR (v rows of type V,
// v_row_bytes apart, widened on the fly; each v element is loaded once per block).
// Column chunks of 64 / NR floats keep 8 independent accumulators in flight.
template <Dtype V, int NR>
inline void accumulate_pv(const float* p,
                          int64_t tn,
                          const char* vt,
                          int64_t v_row_bytes,
                          int64_t dvp,
                          const float* alpha,
                          float* o) {
  constexpr int CV = 8 / NR;  // registers per row per chunk
  int64_t c = 0;
  for (; c + 8 * CV <= dvp; c += 8 * CV) {
    __m256 acc[NR][CV];
    for (int r = 0; r < NR; ++r) {
      const __m256 al = _mm256_set1_ps(alpha[r]);
      for (int cv = 0; cv < CV; ++cv) {
        acc[r][cv] = _mm256_mul_ps(_mm256_loadu_ps(o + r * dvp + c + 8 * cv), al);
      }
    }
    for (int64_t j = 0; j < tn; ++j) {
      const char* vj = vt + j * v_row_bytes;
      __m256 v[CV];
      for (int cv = 0; cv < CV; ++cv) v[cv] = avx2::load8<V>(vj, c + 8 * cv);
      for (int r = 0; r < NR; ++r) {
        const __m256 pr = _mm256_broadcast_ss(p + j * NR + r);
        for (int cv = 0; cv < CV; ++cv) acc[r][cv] = _mm256_fmadd_ps(pr, v[cv], acc[r][cv]);
      }
    }
    for (int r = 0; r < NR; ++r) {
      for (int cv = 0; cv < CV; ++cv) _mm256_storeu_ps(o + r * dvp + c + 8 * cv, acc[r][cv]);
    }
  }
  for (; c < dvp; c += 8) {  // leftover registers, one at a time
    __m256 acc[NR];
    for (int r = 0; r < NR; ++r) {
      acc[r] = _mm256_mul_ps(_mm256_loadu_ps(o + r * dvp + c), _mm256_set1_ps(alpha[r]));
    }
    for (int64_t j = 0; j < tn; ++j) {
      const __m256 v0 = avx2::load8<V>(vt + j * v_row_bytes, c);
      for (int r = 0; r < NR; ++r) {
        acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(p + j * NR + r), v0, acc[r]);
      }
    }
    for (int r = 0; r < NR; ++r) _mm256_storeu_ps(o + r * dvp + c, acc[r]);
  }
}

template <Dtype D, int NR>
void block_impl(const AttentionArgs& a,
                const AttentionOptions& opt,
                const AttentionBlock& blk,
                float* scratch,
                float* m_out,
                float* l_out,
                float* o) {
  constexpr int KPS = 8 / NR;
  const int64_t group = a.q_heads / a.kv_heads;
  const int64_t dp = round_up8(a.head_dim), dvp = round_up8(a.v_head_dim);
  float* qs = scratch;      // [R][dp]
  float* ks = qs + R * dp;  // [T][dp]
  float* vs = ks + T * dp;  // [T][dvp]
  float* s = vs + T * dvp;  // [T + 8][NR]

  // Rows: query, head, visible key range (clipped to the task's key range).
  int64_t qi[NR], qh[NR], lo[NR], hi[NR];
  int64_t key_lo = blk.key_end, key_hi = blk.key_begin;
  for (int r = 0; r < NR; ++r) {
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
      // Padding row: zero query, every key treated as visible; results unused.
      qi[r] = qh[r] = 0;
      lo[r] = blk.key_begin;
      hi[r] = blk.key_end;
      for (int64_t d = 0; d < dp; ++d) qs[r * dp + d] = 0.0f;
    }
  }

  const __m256 neg_inf = _mm256_set1_ps(kNegInf);
  __m256 m = neg_inf, l = _mm256_setzero_ps();  // lane L: row L % NR
  for (int64_t i = 0; i < NR * dvp; ++i) o[i] = 0.0f;

  const char* kbase = static_cast<const char*>(a.k);
  const char* vbase = static_cast<const char*>(a.v);
  const int64_t esize = D == Dtype::f32 ? 4 : 2;
  const int64_t k_head = blk.batch * a.k_strides[0] + blk.kv_head * a.k_strides[1];
  const int64_t v_head = blk.batch * a.v_strides[0] + blk.kv_head * a.v_strides[1];
  // Rows are read in place (widened on the fly) when contiguous and a whole number of
  // registers; otherwise gathered into an f32 tile first.
  const bool k_direct = a.k_strides[3] == 1 && a.head_dim % 8 == 0;
  const bool v_direct = a.v_strides[3] == 1 && a.v_head_dim % 8 == 0;
  const int64_t k_row_bytes = a.k_strides[2] * esize, v_row_bytes = a.v_strides[2] * esize;
  const __m256 scale = _mm256_set1_ps(opt.scale);

  for (int64_t t0 = key_lo; t0 < key_hi; t0 += T) {
    const int64_t tn = min64(T, key_hi - t0);
    const int64_t tn_pad = (tn + KPS - 1) / KPS * KPS;
    const int64_t next_rows = min64(T, key_hi - (t0 + T));
    const char* next_k =
        k_direct && next_rows > 0 ? kbase + (k_head + (t0 + T) * a.k_strides[2]) * esize : nullptr;
    const char* this_v = v_direct ? vbase + (v_head + t0 * a.v_strides[2]) * esize : nullptr;
    if (k_direct) {
      score_tile<D, NR>(qs, dp, kbase + (k_head + t0 * a.k_strides[2]) * esize, k_row_bytes, tn,
                        scale, s, next_k, next_rows, a.head_dim * esize, this_v, v_row_bytes,
                        a.v_head_dim * esize);
    } else {
      for (int64_t j = 0; j < tn; ++j) {
        widen_row<D>(kbase + (k_head + (t0 + j) * a.k_strides[2]) * esize, a.k_strides[3],
                     a.head_dim, dp, ks + j * dp);
      }
      score_tile<Dtype::f32, NR>(qs, dp, reinterpret_cast<const char*>(ks), dp * 4, tn, scale, s,
                                 nullptr, 0, 0, this_v, v_row_bytes, a.v_head_dim * esize);
    }
    const int64_t nvec = tn_pad * NR / 8;  // whole registers over s
    if (opt.softcap > 0.0f) {
      const __m256 cap = _mm256_set1_ps(opt.softcap), inv = _mm256_set1_ps(1.0f / opt.softcap);
      for (int64_t k = 0; k < nvec; ++k) {
        const __m256 x = _mm256_loadu_ps(s + 8 * k);
        _mm256_storeu_ps(s + 8 * k, _mm256_mul_ps(cap, avx2::tanh(_mm256_mul_ps(x, inv))));
      }
    }
    if (opt.mask) {
      for (int r = 0; r < NR && r < blk.rows; ++r) {
        const float* mr = opt.mask + blk.batch * opt.mask_strides[0] + qh[r] * opt.mask_strides[1] +
                          qi[r] * opt.mask_strides[2] + t0 * opt.mask_strides[3];
        for (int64_t j = 0; j < tn; ++j) s[j * NR + r] += mr[j * opt.mask_strides[3]];
      }
    }
    for (int r = 0; r < NR; ++r) {
      if (t0 >= lo[r] && t0 + tn <= hi[r]) continue;  // whole tile visible
      for (int64_t j = 0; j < tn; ++j) {
        if (t0 + j < lo[r] || t0 + j >= hi[r]) s[j * NR + r] = kNegInf;
      }
    }
    for (int64_t i = tn * NR; i < tn_pad * NR; ++i) s[i] = kNegInf;  // pad keys
    // Online softmax: m' = max(m, max_j s), p = e^(s - m'), l' = l e^(m - m') + sum p.
    __m256 mx = neg_inf;
    for (int64_t k = 0; k < nvec; ++k) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + 8 * k));
    const __m256 m_new = _mm256_max_ps(m, fold_max<NR>(mx));
    // A row with nothing visible so far keeps m = -inf; use 0 there so no -inf - -inf.
    const __m256 m_use =
        _mm256_blendv_ps(m_new, _mm256_setzero_ps(), _mm256_cmp_ps(m_new, neg_inf, _CMP_EQ_OQ));
    __m256 sum = _mm256_setzero_ps();
    for (int64_t k = 0; k < nvec; ++k) {
      const __m256 p = avx2::exp(_mm256_sub_ps(_mm256_loadu_ps(s + 8 * k), m_use));
      _mm256_storeu_ps(s + 8 * k, p);
      sum = _mm256_add_ps(sum, p);
    }
    const __m256 alpha = avx2::exp(_mm256_sub_ps(m, m_use));
    l = _mm256_fmadd_ps(l, alpha, fold_add<NR>(sum));
    m = m_new;
    alignas(32) float alpha_s[8];
    _mm256_store_ps(alpha_s, alpha);

    // o = o * alpha + p v, values in place or gathered like the keys.
    if (v_direct) {
      accumulate_pv<D, NR>(s, tn, vbase + (v_head + t0 * a.v_strides[2]) * esize, v_row_bytes, dvp,
                           alpha_s, o);
    } else {
      for (int64_t j = 0; j < tn; ++j) {
        widen_row<D>(vbase + (v_head + (t0 + j) * a.v_strides[2]) * esize, a.v_strides[3],
                     a.v_head_dim, dvp, vs + j * dvp);
      }
      accumulate_pv<Dtype::f32, NR>(s, tn, reinterpret_cast<const char*>(vs), dvp * 4, dvp, alpha_s,
                                    o);
    }
  }
  alignas(32) float ms[8], ls[8];
  _mm256_store_ps(ms, m);
  _mm256_store_ps(ls, l);
  for (int r = 0; r < NR; ++r) {
    m_out[r] = ms[r];
    l_out[r] = ls[r];
  }
}

template <Dtype D>
void block_rows(const AttentionArgs& a,
                const AttentionOptions& opt,
                const AttentionBlock& blk,
                float* scratch,
                float* m,
                float* l,
                float* o) {
  if (blk.rows == 1) return block_impl<D, 1>(a, opt, blk, scratch, m, l, o);
  if (blk.rows == 2) return block_impl<D, 2>(a, opt, blk, scratch, m, l, o);
  return block_impl<D, 4>(a, opt, blk, scratch, m, l, o);
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
      return block_rows<Dtype::f16>(args, options, block, scratch, m, l, o);
    case Dtype::bf16:
      return block_rows<Dtype::bf16>(args, options, block, scratch, m, l, o);
    default:
      return block_rows<Dtype::f32>(args, options, block, scratch, m, l, o);
  }
}

}  // namespace lmx::cpu::detail
