// Width-generic flash-attention block over a lane set V (vec_math.h): a few query rows of
// one (batch, kv head) against a key range, tile by tile with an online softmax.
// Instantiated by attention_avx2.cpp (8 lanes) and attention_avx512.cpp (16 lanes); include
// only through those.
//
// A block of NR rows (NR = 1, 2 or 4: the block's row count rounded up, so MHA decode
// (one row) and group-2 GQA do not pay for 4) works on NR rows x L/NR keys per step
// (L = V::kLanes), L dot products reduced into one register. Layout of a tile's scores:
// s[j * NR + r] (key-major), so every register of s holds L/NR keys of all NR rows and
// the online-softmax update runs on whole registers, lane l belonging to row l % NR.
// Sums are f32; e^x and the soft-cap's tanh are vec_math.h's (the same bits on each tier).
#pragma once

#include <cstdint>

#include "lmx/backend/cpu/attention_avx2.h"
#include "lmx/backend/cpu/vec_math.h"

namespace lmx::cpu::detail::simd_attention {

constexpr int64_t R = kAttentionBlockRows;
constexpr int64_t T = kAttentionTileKeys;
constexpr float kNegInf = -__builtin_inff();

LMX_SIMD_TARGET static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
LMX_SIMD_TARGET static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
// n rounded up to a whole number of lane sets.
template <class V>
LMX_SIMD_TARGET static constexpr int64_t round_up_lanes(int64_t n) {
  return (n + V::kLanes - 1) / V::kLanes * V::kLanes;
}

// dst[0..n) = src row (element stride `stride`) widened to f32; dst[n..np) = 0.
template <class V, Dtype D>
LMX_SIMD_TARGET static void widen_row(
    const void* src, int64_t stride, int64_t n, int64_t np, float* dst) {
  constexpr int64_t L = V::kLanes;
  int64_t d = 0;
  if (stride == 1) {
    for (; d + L <= n; d += L) V::store(dst + d, V::template load_as<D>(src, d));
    if (d < n) {
      V::store(dst + d, V::template load_tail_as<D>(src, d, n - d));
      d += L;
    }
  } else {
    for (; d < n; ++d) {
      const int64_t at = d * stride;
      if constexpr (D == Dtype::f32) {
        dst[d] = static_cast<const float*>(src)[at];
      } else {
        float one[V::kLanes];
        V::store(one, V::template load_tail_as<D>(src, at, 1));
        dst[d] = one[0];
      }
    }
  }
  for (; d < np; ++d) dst[d] = 0.0f;
}

// Touches `bytes` bytes from p into the cache ahead of use.
LMX_SIMD_TARGET static inline void prefetch_row(const char* p, int64_t bytes) {
  for (int64_t b = 0; b < bytes; b += 64) _mm_prefetch(p + b, _MM_HINT_T0);
}

// Combines the lanes of x that belong to the same row (lane l is row l % NR), so every
// lane ends up holding its row's max / sum.
template <class V, int NR, class Op>
LMX_SIMD_TARGET static inline typename V::Reg fold_rows(typename V::Reg x, Op op) {
  if constexpr (V::kLanes / 2 >= NR) x = op(x, V::template xor_lanes<V::kLanes / 2>(x));
  if constexpr (V::kLanes / 4 >= NR) x = op(x, V::template xor_lanes<V::kLanes / 4>(x));
  if constexpr (V::kLanes / 8 >= NR) x = op(x, V::template xor_lanes<V::kLanes / 8>(x));
  if constexpr (V::kLanes / 16 >= NR) x = op(x, V::template xor_lanes<V::kLanes / 16>(x));
  return x;
}

// Scores of NR rows (q: [NR][dp], zero padded) against the L/NR keys k[0..L/NR) (rows
// of dp elements of type K, widened on the fly), scaled; stored as s[kk * NR + r] for
// key kk, row r.
template <class V, Dtype K, int NR>
LMX_SIMD_TARGET static inline void score_step(
    const float* q, int64_t dp, const char* const* k, typename V::Reg scale, float* s) {
  constexpr int L = V::kLanes, KPS = L / NR;
  typename V::Reg a[L];
  for (int i = 0; i < L; ++i) a[i] = V::zero();
  for (int64_t d = 0; d < dp; d += L) {
    typename V::Reg qv[NR];
    for (int r = 0; r < NR; ++r) qv[r] = V::load(q + r * dp + d);
    for (int kk = 0; kk < KPS; ++kk) {
      const auto x = V::template load_as<K>(k[kk], d);
      for (int r = 0; r < NR; ++r) a[kk * NR + r] = V::fmadd(qv[r], x, a[kk * NR + r]);
    }
  }
  V::store(s, V::mul(V::transpose_sum(a), scale));
}

// Scores of a tile of tn keys (key j at byte offset j * k_row_bytes of kt), padded to
// a multiple of L/NR keys by repeating the last key (the caller masks the pads).
// While it runs it prefetches the next tile's keys and this tile's values (null when
// not wanted): decode streams the cache once, and those misses would stall the FMAs.
template <class V, Dtype K, int NR>
LMX_SIMD_TARGET static inline void score_tile(const float* q,
                                              int64_t dp,
                                              const char* kt,
                                              int64_t k_row_bytes,
                                              int64_t tn,
                                              typename V::Reg scale,
                                              float* s,
                                              const char* next_k,
                                              int64_t next_k_rows,
                                              int64_t k_bytes,
                                              const char* this_v,
                                              int64_t v_row_bytes,
                                              int64_t v_bytes) {
  constexpr int KPS = V::kLanes / NR;
  for (int64_t j = 0; j < tn; j += KPS) {
    const char* k[KPS];
    for (int kk = 0; kk < KPS; ++kk) k[kk] = kt + min64(j + kk, tn - 1) * k_row_bytes;
    for (int64_t jj = j; jj < j + KPS; ++jj) {
      if (next_k && jj < next_k_rows) prefetch_row(next_k + jj * k_row_bytes, k_bytes);
      if (this_v && jj < tn) prefetch_row(this_v + jj * v_row_bytes, v_bytes);
    }
    score_step<V, K, NR>(q, dp, k, scale, s + j * NR);
  }
}

// Columns [c, c + CV L) of o[r] for r < NR: o[r] * alpha[r] + sum_j p[j][r] v[j] (v rows of
// type V, v_row_bytes apart, widened on the fly; each v element is loaded once per block).
template <class V, Dtype D, int NR, int CV>
LMX_SIMD_TARGET static inline void accumulate_pv_chunk(const float* p,
                                                       int64_t tn,
                                                       const char* vt,
                                                       int64_t v_row_bytes,
                                                       int64_t c,
                                                       int64_t ldo,
                                                       const float* alpha,
                                                       float* o) {
  constexpr int L = V::kLanes;
  typename V::Reg acc[NR][CV];
  for (int r = 0; r < NR; ++r) {
    const auto al = V::set1(alpha[r]);
    for (int cv = 0; cv < CV; ++cv) acc[r][cv] = V::mul(V::load(o + r * ldo + c + L * cv), al);
  }
  for (int64_t j = 0; j < tn; ++j) {
    const char* vj = vt + j * v_row_bytes;
    typename V::Reg v[CV];
    for (int cv = 0; cv < CV; ++cv) v[cv] = V::template load_as<D>(vj, c + L * cv);
    for (int r = 0; r < NR; ++r) {
      const auto pr = V::set1(p[j * NR + r]);
      for (int cv = 0; cv < CV; ++cv) acc[r][cv] = V::fmadd(pr, v[cv], acc[r][cv]);
    }
  }
  for (int r = 0; r < NR; ++r) {
    for (int cv = 0; cv < CV; ++cv) V::store(o + r * ldo + c + L * cv, acc[r][cv]);
  }
}

// Columns [c, dvp) of o[r] for r < NR (o rows ldo floats apart), in chunks of CV
// registers, then what is left in chunks of CV / 2, CV / 4, ... 1. Called with CV = 8 / NR:
// 8 independent accumulators in flight.
template <class V, Dtype D, int NR, int CV>
LMX_SIMD_TARGET static inline void accumulate_pv(const float* p,
                                                 int64_t tn,
                                                 const char* vt,
                                                 int64_t v_row_bytes,
                                                 int64_t c,
                                                 int64_t dvp,
                                                 int64_t ldo,
                                                 const float* alpha,
                                                 float* o) {
  for (; c + V::kLanes * CV <= dvp; c += V::kLanes * CV)
    accumulate_pv_chunk<V, D, NR, CV>(p, tn, vt, v_row_bytes, c, ldo, alpha, o);
  if constexpr (CV > 1)
    accumulate_pv<V, D, NR, CV / 2>(p, tn, vt, v_row_bytes, c, dvp, ldo, alpha, o);
}

template <class V, Dtype D, int NR>
LMX_SIMD_TARGET static void block_impl(const AttentionArgs& a,
                                       const AttentionOptions& opt,
                                       const AttentionBlock& blk,
                                       float* scratch,
                                       float* m_out,
                                       float* l_out,
                                       float* o) {
  using Reg = typename V::Reg;
  constexpr int L = V::kLanes, KPS = L / NR;
  const int64_t group = a.q_heads / a.kv_heads;
  const int64_t dp = round_up_lanes<V>(a.head_dim), dvp = round_up_lanes<V>(a.v_head_dim);
  const int64_t ldo = attention_row_floats(a.v_head_dim);  // o's row stride (>= dvp)
  float* qs = scratch;                                     // [R][dp]
  float* ks = qs + R * dp;                                 // [T][dp]
  float* vs = ks + T * dp;                                 // [T][dvp]
  float* s = vs + T * dvp;                                 // [T + L][NR]

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
      widen_row<V, Dtype::f32>(q, a.q_strides[3], a.head_dim, dp, qs + r * dp);
    } else {
      // Padding row: zero query, every key treated as visible; results unused.
      qi[r] = qh[r] = 0;
      lo[r] = blk.key_begin;
      hi[r] = blk.key_end;
      for (int64_t d = 0; d < dp; ++d) qs[r * dp + d] = 0.0f;
    }
  }

  const Reg neg_inf = V::set1(kNegInf);
  Reg m = neg_inf, l = V::zero();  // lane l: row l % NR
  for (int64_t i = 0; i < NR * ldo; ++i) o[i] = 0.0f;

  const char* kbase = static_cast<const char*>(a.k);
  const char* vbase = static_cast<const char*>(a.v);
  const int64_t esize = D == Dtype::f32 ? 4 : 2;
  const int64_t k_head = blk.batch * a.k_strides[0] + blk.kv_head * a.k_strides[1];
  const int64_t v_head = blk.batch * a.v_strides[0] + blk.kv_head * a.v_strides[1];
  // Rows are read in place (widened on the fly) when contiguous and a whole number of
  // registers; otherwise gathered into an f32 tile first.
  const bool k_direct = a.k_strides[3] == 1 && a.head_dim % L == 0;
  const bool v_direct = a.v_strides[3] == 1 && a.v_head_dim % L == 0;
  const int64_t k_row_bytes = a.k_strides[2] * esize, v_row_bytes = a.v_strides[2] * esize;
  const Reg scale = V::set1(opt.scale);

  for (int64_t t0 = key_lo; t0 < key_hi; t0 += T) {
    const int64_t tn = min64(T, key_hi - t0);
    const int64_t tn_pad = (tn + KPS - 1) / KPS * KPS;
    const int64_t next_rows = min64(T, key_hi - (t0 + T));
    const char* next_k =
        k_direct && next_rows > 0 ? kbase + (k_head + (t0 + T) * a.k_strides[2]) * esize : nullptr;
    const char* this_v = v_direct ? vbase + (v_head + t0 * a.v_strides[2]) * esize : nullptr;
    if (k_direct) {
      score_tile<V, D, NR>(qs, dp, kbase + (k_head + t0 * a.k_strides[2]) * esize, k_row_bytes, tn,
                           scale, s, next_k, next_rows, a.head_dim * esize, this_v, v_row_bytes,
                           a.v_head_dim * esize);
    } else {
      for (int64_t j = 0; j < tn; ++j) {
        widen_row<V, D>(kbase + (k_head + (t0 + j) * a.k_strides[2]) * esize, a.k_strides[3],
                        a.head_dim, dp, ks + j * dp);
      }
      score_tile<V, Dtype::f32, NR>(qs, dp, reinterpret_cast<const char*>(ks), dp * 4, tn, scale, s,
                                    nullptr, 0, 0, this_v, v_row_bytes, a.v_head_dim * esize);
    }
    const int64_t nvec = tn_pad * NR / L;  // whole registers over s
    if (opt.softcap > 0.0f) {
      const Reg cap = V::set1(opt.softcap), inv = V::set1(1.0f / opt.softcap);
      for (int64_t k = 0; k < nvec; ++k) {
        const Reg x = V::load(s + L * k);
        V::store(s + L * k, V::mul(cap, simd::tanh<V>(V::mul(x, inv))));
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
    Reg mx = neg_inf;
    for (int64_t k = 0; k < nvec; ++k) mx = V::max(mx, V::load(s + L * k));
    const Reg m_new = V::max(m, fold_rows<V, NR>(mx, simd::Max<V>{}));
    // A row with nothing visible so far keeps m = -inf; use 0 there so no -inf - -inf.
    const Reg m_use = V::select(V::eq(m_new, neg_inf), V::zero(), m_new);
    Reg sum = V::zero();
    for (int64_t k = 0; k < nvec; ++k) {
      const Reg p = simd::exp<V>(V::sub(V::load(s + L * k), m_use));
      V::store(s + L * k, p);
      sum = V::add(sum, p);
    }
    const Reg alpha = simd::exp<V>(V::sub(m, m_use));
    l = V::fmadd(l, alpha, fold_rows<V, NR>(sum, simd::Add<V>{}));
    m = m_new;
    float alpha_s[L];
    V::store(alpha_s, alpha);

    // o = o * alpha + p v, values in place or gathered like the keys.
    if (v_direct) {
      accumulate_pv<V, D, NR, 8 / NR>(s, tn, vbase + (v_head + t0 * a.v_strides[2]) * esize,
                                      v_row_bytes, 0, dvp, ldo, alpha_s, o);
    } else {
      for (int64_t j = 0; j < tn; ++j) {
        widen_row<V, D>(vbase + (v_head + (t0 + j) * a.v_strides[2]) * esize, a.v_strides[3],
                        a.v_head_dim, dvp, vs + j * dvp);
      }
      accumulate_pv<V, Dtype::f32, NR, 8 / NR>(s, tn, reinterpret_cast<const char*>(vs), dvp * 4, 0,
                                               dvp, ldo, alpha_s, o);
    }
  }
  float ms[L], ls[L];
  V::store(ms, m);
  V::store(ls, l);
  for (int r = 0; r < NR; ++r) {
    m_out[r] = ms[r];
    l_out[r] = ls[r];
  }
}

template <class V, Dtype D>
LMX_SIMD_TARGET static void block_rows(const AttentionArgs& a,
                                       const AttentionOptions& opt,
                                       const AttentionBlock& blk,
                                       float* scratch,
                                       float* m,
                                       float* l,
                                       float* o) {
  if (blk.rows == 1) return block_impl<V, D, 1>(a, opt, blk, scratch, m, l, o);
  if (blk.rows == 2) return block_impl<V, D, 2>(a, opt, blk, scratch, m, l, o);
  return block_impl<V, D, 4>(a, opt, blk, scratch, m, l, o);
}

// The block kernel of attention_avx2.h on V's lanes, for every kv dtype.
template <class V>
LMX_SIMD_TARGET static void attention_block(const AttentionArgs& args,
                                            const AttentionOptions& options,
                                            const AttentionBlock& block,
                                            float* scratch,
                                            float* m,
                                            float* l,
                                            float* o) {
  switch (args.kv_dtype) {
    case Dtype::f16:
      return block_rows<V, Dtype::f16>(args, options, block, scratch, m, l, o);
    case Dtype::bf16:
      return block_rows<V, Dtype::bf16>(args, options, block, scratch, m, l, o);
    default:
      return block_rows<V, Dtype::f32>(args, options, block, scratch, m, l, o);
  }
}

}  // namespace lmx::cpu::detail::simd_attention
