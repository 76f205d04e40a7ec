// AVX2/FMA/F16C kernels for MLX affine-quantized weights: matvec (decode) on the packed
// layout with f32 activations (default) or int16 / int8 activations (opt-in), and matvec /
// GEMM on the MLX layout as stored. The packed GEMM (prefill) is in quant_gemm_avx2.cpp;
// see quant_pack.cpp for the packed layout.
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <span>
#include <type_traits>
#include <vector>

#include "lmx/backend/cpu/gemm_avx2.h"
#include "lmx/backend/cpu/matmul_kernels.h"
#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/quant_avx2_shared.h"
#include "lmx/backend/cpu/quant_matvec_int.h"
#include "lmx/base/thread_pool.h"

namespace lmx::cpu::detail {
namespace {

using namespace avx2;
constexpr int R = PackedQuantWeight::kRows;

template <int Begin, int End, class F>
inline void static_for(F&& f) {
  if constexpr (Begin < End) {
    f(std::integral_constant<int, Begin>{});
    static_for<Begin + 1, End>(f);
  }
}

// acc[r] += scale[g, r] * (dot[0][r] + dot[1][r])
template <Dtype SD>
inline void flush(const uint8_t* scales, int64_t g, const __m256 dot[2][R], __m256 acc[R]) {
  alignas(16) float s[R];
  _mm_store_ps(s, load4<SD>(scales + g * R * ssize<SD>()));
  for (int r = 0; r < R; ++r)
    acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(s[r]), _mm256_add_ps(dot[0][r], dot[1][r]), acc[r]);
}

// One bit plane of one 4-row block, f32 activations: acc[r] += sum_g s[g,r] * (q . xs).
// Two dot accumulators per row (even / odd positions) keep 8 FMA chains in flight.
template <int B, int G, Dtype SD>
void plane_f32(
    const uint8_t* plane, const uint8_t* scales, const float* xs, int64_t groups, __m256 acc[R]) {
  __m256 dot[2][R];
  auto zero = [&] {
    for (int r = 0; r < R; ++r) dot[0][r] = dot[1][r] = _mm256_setzero_ps();
  };
  if constexpr (B == 8) {
    for (int64_t g = 0; g < groups; ++g) {
      zero();
      const uint8_t* base = plane + g * (G / 32) * 32 * R;
      const float* xg = xs + g * G;
      static_for<0, G / 8>([&](auto c) {
        if constexpr (c % 4 == 0) {
          prefetch2(base + (c / 4) * 32 * R);
        }
        const __m256 xv = _mm256_loadu_ps(xg + c * 8);
        const uint8_t* unit = base + (c / 4) * 32 * R + (c % 4) * 8;
        for (int r = 0; r < R; ++r) {
          const __m256i q = _mm256_cvtepi8_epi32(
              _mm_loadl_epi64(reinterpret_cast<const __m128i*>(unit + r * 32)));
          dot[c % 2][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), xv, dot[c % 2][r]);
        }
      });
      flush<SD>(scales, g, dot, acc);
    }
  } else {
    constexpr int P = 32 / B;  // positions per lane
    constexpr int U = 8 * P;   // inputs per unit
    auto pos_step = [&](auto pos, const __m256i* v, const float* xu) {
      const __m256 xv = _mm256_loadu_ps(xu + pos * 8);
      for (int r = 0; r < R; ++r) {
        __m256i t;
        if constexpr (pos == P - 1) {
          t = _mm256_srli_epi32(v[r], 32 - B);
        } else {
          t = _mm256_and_si256(v[r],
                               _mm256_set1_epi32(static_cast<int>(((1u << B) - 1u) << (B * pos))));
        }
        dot[pos % 2][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), xv, dot[pos % 2][r]);
      }
    };
    auto load_unit = [&](int64_t u, __m256i* v) {
      const uint8_t* p = plane + u * R * 32;
      prefetch2(p);
      for (int r = 0; r < R; ++r)
        v[r] = _mm256_load_si256(reinterpret_cast<const __m256i*>(p + r * 32));
    };
    if constexpr (G >= U) {
      for (int64_t g = 0; g < groups; ++g) {
        zero();
        for (int uu = 0; uu < G / U; ++uu) {
          const int64_t u = g * (G / U) + uu;
          __m256i v[R];
          load_unit(u, v);
          static_for<0, P>([&](auto pos) { pos_step(pos, v, xs + u * U); });
        }
        flush<SD>(scales, g, dot, acc);
      }
    } else {
      constexpr int S = U / G;   // groups per unit
      constexpr int PG = G / 8;  // positions per group
      const int64_t units = (groups + S - 1) / S;
      for (int64_t u = 0; u < units; ++u) {
        __m256i v[R];
        load_unit(u, v);
        static_for<0, S>([&](auto s) {
          const int64_t g = u * S + s;
          if (g < groups) {
            zero();
            static_for<s * PG, (s + 1) * PG>([&](auto pos) { pos_step(pos, v, xs + u * U); });
            flush<SD>(scales, g, dot, acc);
          }
        });
      }
    }
  }
}

// The four row sums of acc[0..3] as one vector (row r in lane r).
inline __m128 reduce_rows(const __m256 acc[R]) {
  const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

// One group g of one 4-row block, int8 activations (4-bit plane with G >= 64, or 8-bit
// plane), added to the block's accumulators.
template <int B, int G, Dtype SD>
inline void group_int8(const uint8_t* block,
                       const BlockLayout& bl,
                       const XPrep& xp,
                       int64_t g,
                       __m256& acc,
                       __m128& bacc) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i iacc[R];
  for (int r = 0; r < R; ++r) iacc[r] = _mm256_setzero_si256();
  if constexpr (B == 4) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    for (int uu = 0; uu < G / 64; ++uu) {
      const int64_t u = g * (G / 64) + uu;
      const __m256i xlo = _mm256_load_si256(reinterpret_cast<const __m256i*>(xp.xq + u * 64));
      const __m256i xhi = _mm256_load_si256(reinterpret_cast<const __m256i*>(xp.xq + u * 64 + 32));
      prefetch2(block + u * R * 32, bl.ahead);
      for (int r = 0; r < R; ++r) {
        const __m256i v =
            _mm256_load_si256(reinterpret_cast<const __m256i*>(block + (u * R + r) * 32));
        const __m256i lo = _mm256_and_si256(v, low);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
        const __m256i s16 =
            _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo), _mm256_maddubs_epi16(hi, xhi));
        iacc[r] = _mm256_add_epi32(iacc[r], _mm256_madd_epi16(s16, ones));
      }
    }
  } else {
    for (int c = 0; c < G / 32; ++c) {
      const int64_t u = g * (G / 32) + c;
      const __m256i xv = _mm256_load_si256(reinterpret_cast<const __m256i*>(xp.xq + u * 32));
      prefetch2(block + u * R * 32, bl.ahead);
      for (int r = 0; r < R; ++r) {
        const __m256i v =
            _mm256_load_si256(reinterpret_cast<const __m256i*>(block + (u * R + r) * 32));
        const __m256i p16 = _mm256_maddubs_epi16(_mm256_abs_epi8(v), _mm256_sign_epi8(xv, v));
        iacc[r] = _mm256_add_epi32(iacc[r], _mm256_madd_epi16(p16, ones));
      }
    }
  }
  flush_int<B, SD>(block, bl, xp, g, iacc, acc, bacc);
}

// One group g of one 4-row block, int16 activations. 4-bit plane (G >= 64): read as 16
// lanes of 16 bits, unit lane L holds positions p = 4 * (L % 2) + i at bits 4i, i.e. inputs
// 32 * (L % 2) + 8i + L / 2; the x values are pre-permuted to that order, so "shift, AND"
// gives q and vpmaddwd multiplies 16 weights by 16 int16 activations, summing pairs that
// share a group. 8-bit plane: sign-extend 16 bytes to int16 (vpmovsxbw) and vpmaddwd with x
// in input order. Each row's products go straight into its accumulator (two partial sums
// per row): fewer live registers than a tree per row, so the 4-row loop does not spill.
template <int B, int G, Dtype SD>
inline void group_int16(const uint8_t* block,
                        const BlockLayout& bl,
                        const XPrep& xp,
                        int64_t g,
                        __m256& acc,
                        __m128& bacc) {
  __m256i iacc[R];
  for (int r = 0; r < R; ++r) iacc[r] = _mm256_setzero_si256();
  if constexpr (B == 4) {
    const __m256i low = _mm256_set1_epi16(0x0F);
    for (int uu = 0; uu < G / 64; ++uu) {
      const int64_t u = g * (G / 64) + uu;
      prefetch2(block + u * R * 32, bl.ahead);
      const int16_t* xu = xp.xq16 + u * 64;
      const __m256i x0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(xu));
      const __m256i x1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(xu + 16));
      const __m256i x2 = _mm256_load_si256(reinterpret_cast<const __m256i*>(xu + 32));
      const __m256i x3 = _mm256_load_si256(reinterpret_cast<const __m256i*>(xu + 48));
      for (int r = 0; r < R; ++r) {
        const __m256i v =
            _mm256_load_si256(reinterpret_cast<const __m256i*>(block + (u * R + r) * 32));
        __m256i a = _mm256_madd_epi16(_mm256_and_si256(v, low), x0);
        a = _mm256_add_epi32(a,
                             _mm256_madd_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), low), x1));
        a = _mm256_add_epi32(a,
                             _mm256_madd_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 8), low), x2));
        a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_srli_epi16(v, 12), x3));
        iacc[r] = _mm256_add_epi32(iacc[r], a);
        // Keeps g++ from interleaving the 4 rows' temporaries (it then spills them);
        // the CPU overlaps the rows anyway.
        asm("" : "+x"(iacc[r]));
      }
    }
  } else {
    for (int c = 0; c < G / 32; ++c) {
      const int64_t u = g * (G / 32) + c;
      prefetch2(block + u * R * 32, bl.ahead);
      const __m256i xlo = _mm256_load_si256(reinterpret_cast<const __m256i*>(xp.xq16 + u * 32));
      const __m256i xhi =
          _mm256_load_si256(reinterpret_cast<const __m256i*>(xp.xq16 + u * 32 + 16));
      for (int r = 0; r < R; ++r) {
        const uint8_t* src = block + (u * R + r) * 32;
        const __m256i w0 =
            _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(src)));
        const __m256i w1 =
            _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(src + 16)));
        iacc[r] = _mm256_add_epi32(
            iacc[r], _mm256_add_epi32(_mm256_madd_epi16(w0, xlo), _mm256_madd_epi16(w1, xhi)));
        asm("" : "+x"(iacc[r]));  // as above
      }
    }
  }
  flush_int<B, SD>(block, bl, xp, g, iacc, acc, bacc);
}

using GroupIntFn =
    void (*)(const uint8_t*, const BlockLayout&, const XPrep&, int64_t, __m256&, __m128&);

// NB 4-row blocks at unrelated addresses, advanced together one group at a time: each is
// its own read stream, and a core keeps more lines in flight over two streams than over
// one (a streaming read with this compute: ~32 -> ~36 GB/s on 2 threads of Zen 3 when two
// streams alternate every 128 to 1024 bytes; alternating whole 4-8 KiB blocks gains
// nothing). y4[b] = block b's 4 outputs.
template <int NB, GroupIntFn Group>
void blocks_int(const uint8_t* const* blocks,
                const BlockLayout& bl,
                const XPrep& xp,
                int64_t groups,
                float* const* y4) {
  __m256 acc[NB];
  __m128 bacc[NB];
  for (int b = 0; b < NB; ++b) {
    acc[b] = _mm256_setzero_ps();
    bacc[b] = _mm_setzero_ps();
  }
  for (int64_t g = 0; g < groups; ++g)
    for (int b = 0; b < NB; ++b) Group(blocks[b], bl, xp, g, acc[b], bacc[b]);
  for (int b = 0; b < NB; ++b) store_int(acc[b], bacc[b], y4[b]);
}

// Streams a thread reads at once in the integer matvec (blocks_int's NB).
#ifndef LMX_QUANT_STREAMS
#define LMX_QUANT_STREAMS 2
#endif
constexpr int kStreams = LMX_QUANT_STREAMS;

template <GroupIntFn Group>
void blocks_int_any(const uint8_t* const* blocks,
                    int nb,
                    const BlockLayout& bl,
                    const XPrep& xp,
                    int64_t groups,
                    float* const* y4) {
  if (nb == kStreams) {
    blocks_int<kStreams, Group>(blocks, bl, xp, groups, y4);
  } else {
    for (int b = 0; b < nb; ++b) blocks_int<1, Group>(blocks + b, bl, xp, groups, y4 + b);
  }
}

using PlaneF32Fn = void (*)(const uint8_t*, const uint8_t*, const float*, int64_t, __m256*);
using BlockIntFn =
    void (*)(const uint8_t* const*, int, const BlockLayout&, const XPrep&, int64_t, float* const*);

template <Dtype SD, int B>
PlaneF32Fn pick_f32_g(int group) {
  switch (group) {
    case 32:
      return &plane_f32<B, 32, SD>;
    case 64:
      return &plane_f32<B, 64, SD>;
    default:
      return &plane_f32<B, 128, SD>;
  }
}
template <Dtype SD>
PlaneF32Fn pick_f32_b(int b, int group) {
  switch (b) {
    case 1:
      return pick_f32_g<SD, 1>(group);
    case 2:
      return pick_f32_g<SD, 2>(group);
    case 4:
      return pick_f32_g<SD, 4>(group);
    default:
      return pick_f32_g<SD, 8>(group);
  }
}
PlaneF32Fn pick_f32(Dtype sd, int b, int group) {
  switch (sd) {
    case Dtype::f16:
      return pick_f32_b<Dtype::f16>(b, group);
    case Dtype::bf16:
      return pick_f32_b<Dtype::bf16>(b, group);
    default:
      return pick_f32_b<Dtype::f32>(b, group);
  }
}
template <Dtype SD, int B>
BlockIntFn pick_int8_g(int group) {
  switch (group) {
    case 32:
      return &blocks_int_any<&group_int8<B, 32, SD>>;
    case 64:
      return &blocks_int_any<&group_int8<B, 64, SD>>;
    default:
      return &blocks_int_any<&group_int8<B, 128, SD>>;
  }
}
template <Dtype SD>
BlockIntFn pick_int16_g(int b, int group) {
  if (b == 4) {
    return group == 64 ? &blocks_int_any<&group_int16<4, 64, SD>>
                       : &blocks_int_any<&group_int16<4, 128, SD>>;
  }
  switch (group) {
    case 32:
      return &blocks_int_any<&group_int16<8, 32, SD>>;
    case 64:
      return &blocks_int_any<&group_int16<8, 64, SD>>;
    default:
      return &blocks_int_any<&group_int16<8, 128, SD>>;
  }
}
BlockIntFn pick_int16(Dtype sd, int b, int group) {
  switch (sd) {
    case Dtype::f16:
      return pick_int16_g<Dtype::f16>(b, group);
    case Dtype::bf16:
      return pick_int16_g<Dtype::bf16>(b, group);
    default:
      return pick_int16_g<Dtype::f32>(b, group);
  }
}
BlockIntFn pick_int8(Dtype sd, int b, int group) {
  auto by_b = [&]<Dtype SD>() {
    return b == 4 ? pick_int8_g<SD, 4>(group) : pick_int8_g<SD, 8>(group);
  };
  switch (sd) {
    case Dtype::f16:
      return by_b.template operator()<Dtype::f16>();
    case Dtype::bf16:
      return by_b.template operator()<Dtype::bf16>();
    default:
      return by_b.template operator()<Dtype::f32>();
  }
}

// Sum over groups of (bias + q_offset * scale) * xsum for the 4 rows of a block.
template <Dtype SD>
__m128 bias_term(const uint8_t* block,
                 const PackedQuantWeight& w,
                 const float* xsum,
                 int64_t groups) {
  const uint8_t* sc = block + w.scales_offset();
  const uint8_t* bi = block + w.biases_offset();
  const __m128 off = _mm_set1_ps(static_cast<float>(w.q_offset()));
  __m128 acc = _mm_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    __m128 b = load4<SD>(bi + g * R * ssize<SD>());
    if (w.q_offset()) b = _mm_fmadd_ps(off, load4<SD>(sc + g * R * ssize<SD>()), b);
    acc = _mm_fmadd_ps(b, _mm_set1_ps(xsum[g]), acc);
  }
  return acc;
}
__m128 bias_term_any(const uint8_t* block,
                     const PackedQuantWeight& w,
                     const float* xsum,
                     int64_t groups) {
  switch (w.scale_dtype()) {
    case Dtype::f16:
      return bias_term<Dtype::f16>(block, w, xsum, groups);
    case Dtype::bf16:
      return bias_term<Dtype::bf16>(block, w, xsum, groups);
    default:
      return bias_term<Dtype::f32>(block, w, xsum, groups);
  }
}

struct XWorkspace {
  Scratch xs0, xs1, xsum, xq, dx;
};

// Which activation path a packed matvec takes (reduced precisions only where supported).
ActivationPrecision effective_precision(const PackedQuantWeight& w, ActivationPrecision asked) {
  if (asked == ActivationPrecision::int8 &&
      (w.bits() == 8 || (w.bits() == 4 && w.group_size() >= 64)))
    return ActivationPrecision::int8;
  if (asked == ActivationPrecision::int16 &&
      (w.bits() == 8 || (w.bits() == 4 && w.group_size() >= 64)))
    return ActivationPrecision::int16;
  return ActivationPrecision::f32;
}

// Prepares x for the packed kernels (calling thread, before the parallel region).
XPrep prepare_x(const float* x,
                const PackedQuantWeight& w,
                ActivationPrecision prec,
                XWorkspace& ws) {
  XPrep xp;
  const int64_t k = w.k(), kp = w.k_padded(), gs = w.group_size(), groups = k / gs;
  float* xsum = ws.xsum.get(static_cast<size_t>(groups));
  for (int64_t g = 0; g < groups; ++g) xsum[g] = group_sum(x + g * gs, gs);
  xp.xsum = xsum;
  if (prec == ActivationPrecision::int16) {
    auto* xq = reinterpret_cast<int16_t*>(ws.xq.get(static_cast<size_t>(kp / 2)));
    float* dx = ws.dx.get(static_cast<size_t>(groups));
    std::memset(xq + k, 0, static_cast<size_t>(kp - k) * 2);
    alignas(32) int16_t tmp[128];
    for (int64_t g = 0; g < groups; ++g) {
      dx[g] = quantize_group_int16(x + g * gs, gs, tmp);
      int16_t* dst = xq + g * gs;
      if (w.bits() == 4) {
        // Lane L of row i of a unit takes input 32 * (L % 2) + 8i + L / 2: interleave the
        // 8 inputs at 8i with the 8 at 32 + 8i.
        for (int64_t u = 0; u < gs / 64; ++u)
          for (int i = 0; i < 4; ++i) {
            const __m128i lo =
                _mm_load_si128(reinterpret_cast<const __m128i*>(tmp + u * 64 + 8 * i));
            const __m128i hi =
                _mm_load_si128(reinterpret_cast<const __m128i*>(tmp + u * 64 + 32 + 8 * i));
            int16_t* d = dst + u * 64 + i * 16;
            _mm_storeu_si128(reinterpret_cast<__m128i*>(d), _mm_unpacklo_epi16(lo, hi));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 8), _mm_unpackhi_epi16(lo, hi));
          }
      } else {
        std::memcpy(dst, tmp, static_cast<size_t>(gs) * 2);
      }
    }
    xp.xq16 = xq;
    xp.dx = dx;
    return xp;
  }
  if (prec == ActivationPrecision::int8) {
    auto* xq = reinterpret_cast<int8_t*>(ws.xq.get(static_cast<size_t>(kp / 4)));
    float* dx = ws.dx.get(static_cast<size_t>(groups));
    std::memset(xq, 0, static_cast<size_t>(kp));
    alignas(32) int8_t tmp[128];
    for (int64_t g = 0; g < groups; ++g) {
      dx[g] = quantize_group_int8(x + g * gs, gs, tmp);
      int8_t* dst = xq + g * gs;
      if (w.bits() == 4) {
        // Byte order of the nibble planes: low nibbles then high nibbles of each 64-unit.
        for (int64_t u = 0; u < gs / 64; ++u)
          for (int b = 0; b < 32; ++b) {
            dst[u * 64 + b] = tmp[u * 64 + 16 * (b % 4) + b / 4];
            dst[u * 64 + 32 + b] = tmp[u * 64 + 16 * (b % 4) + 8 + b / 4];
          }
      } else {
        std::memcpy(dst, tmp, static_cast<size_t>(gs));
      }
    }
    xp.xq = xq;
    xp.dx = dx;
    return xp;
  }
  Scratch* bufs[2] = {&ws.xs0, &ws.xs1};
  for (int pl = 0; pl < w.num_planes(); ++pl) {
    float* xs = bufs[pl]->get(static_cast<size_t>(kp));
    const int b = w.plane_bits(pl);
    const int P = 32 / b;
    for (int64_t j = 0; j < kp; ++j) {
      if (j >= k) {
        xs[j] = 0.0f;
        continue;
      }
      int e = w.plane_shift(pl);
      if (b != 8) {
        const int pos = static_cast<int>((j / 8) % P);
        if (pos != P - 1) e -= b * pos;
      }
      xs[j] = std::ldexp(x[j], e);
    }
    xp.xs[pl] = xs;
  }
  return xp;
}

// One packed weight's share of a matvec region: its kernels and where its rows go.
struct MatvecTarget {
  const PackedQuantWeight* w = nullptr;
  float* y = nullptr;
  PlaneF32Fn f32fn[2] = {nullptr, nullptr};
  BlockIntFn intfn = nullptr;
  int64_t blocks = 0;
};

MatvecTarget make_target(const PackedQuantWeight& w, float* y, ActivationPrecision prec) {
  MatvecTarget t;
  t.w = &w;
  t.y = y;
  if (prec == ActivationPrecision::int16) {
    t.intfn = pick_int16(w.scale_dtype(), w.bits(), w.group_size());
  } else if (prec == ActivationPrecision::int8) {
    t.intfn = pick_int8(w.scale_dtype(), w.bits(), w.group_size());
  } else {
    for (int pl = 0; pl < w.num_planes(); ++pl)
      t.f32fn[pl] = pick_f32(w.scale_dtype(), w.plane_bits(pl), w.group_size());
  }
  t.blocks = (w.n() + R - 1) / R;
  return t;
}

// Blocks [b0, b1) of target `target`: what a thread takes from a region at a time.
struct MatvecChunk {
  int target = 0;
  int64_t b0 = 0, b1 = 0;
};

constexpr size_t kMaxSharedTargets = 32;  // weights in one region at most (DeepSeek: 8 experts x 2 + a shared one)
constexpr int64_t kMinChunkBytes = 512 << 10;
constexpr int64_t kTailChunkBytes = 64 << 10;
constexpr int kTailChunksPerThread = 2;
constexpr int64_t kRowsChunkBytes = 128 << 10;
constexpr int64_t kRowsChunksPerThread = 64;

// The chunks of a region over `targets`, in the order threads take them
// (ThreadPool::run_dynamic). Each target's head: up to 8 chunks per thread, but about
// kMinChunkBytes or more each, since every chunk starts new streams whose first lines are
// read cold (Qwen-0.5B's 2.5 MB weights in 14 chunks lost 5-10% of their bandwidth to
// it), and a whole number per thread. Then, after every head, each target's tail of
// kTailChunksPerThread small chunks per thread (~64 KiB), so threads that start or run at
// different speeds finish within a small chunk of each other instead of a large one.
// With several x rows (run_matvec_rows) a chunk is read once from memory and then from
// the core's L2 for the other rows, so the head chunks are smaller (min_chunk_bytes
// kRowsChunkBytes, up to kRowsChunksPerThread per thread): a chunk must stay in L2
// between its rows.
void plan_chunks(std::span<const MatvecTarget> targets,
                 int nt,
                 std::vector<MatvecChunk>& out,
                 int64_t min_chunk_bytes = kMinChunkBytes,
                 int64_t max_per_thread = 8) {
  out.clear();
  int64_t tail_blocks[kMaxSharedTargets] = {0}, tail_chunk[kMaxSharedTargets] = {0};
  for (size_t i = 0; i < targets.size(); ++i) {
    const MatvecTarget& t = targets[i];
    const int64_t bb = t.w->block_bytes();
    if (nt > 1) {
      tail_chunk[i] = std::max<int64_t>(1, kTailChunkBytes / bb);
      tail_blocks[i] = tail_chunk[i] * kTailChunksPerThread * nt;
      if (2 * tail_blocks[i] > t.blocks) tail_blocks[i] = 0;  // small: head chunks only
    }
    const int64_t head = t.blocks - tail_blocks[i];
    const int64_t per_thread = std::clamp<int64_t>(head * bb / (nt * min_chunk_bytes), 1, max_per_thread);
    const int64_t chunk = (head + nt * per_thread - 1) / (nt * per_thread);
    for (int64_t b = 0; b < head; b += chunk)
      out.push_back({static_cast<int>(i), b, std::min(head, b + chunk)});
  }
  for (size_t i = 0; i < targets.size(); ++i)
    for (int64_t b = targets[i].blocks - tail_blocks[i]; b < targets[i].blocks; b += tail_chunk[i])
      out.push_back({static_cast<int>(i), b, std::min(targets[i].blocks, b + tail_chunk[i])});
}

// Threads for a region over `blocks` row blocks of n rows of k inputs in all.
int matvec_threads(const ThreadPool& pool, int64_t blocks, int64_t n, int64_t k) {
  return static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>(pool.num_threads(),
                           std::min<int64_t>(blocks / 16, threads_for_weights(n, k)))));
}

// Blocks [b0, b1) of target t: every output row is computed by the same code whatever the
// chunking, so one region over several targets gives the bits of separate regions.
void matvec_chunk(
    const MatvecTarget& t, const XPrep& xp, ActivationPrecision prec, int64_t b0, int64_t b1) {
  const PackedQuantWeight& w = *t.w;
  const int64_t groups = w.k() / w.group_size();
  const BlockLayout bl{w.scales_offset(), w.biases_offset(),
                       prec == ActivationPrecision::f32 ? kPrefetchAhead : prefetch_ahead(w)};
  // The kernels prefetch bl.ahead bytes past each plane unit they read, which skips
  // the lines that lie that far past this block's scales and biases (the plane reads jump
  // over them): fetch those here, so the stream has no holes.
  const int64_t tail = w.block_bytes() - w.scales_offset();
  auto block_at = [&](int64_t blk) {
    const uint8_t* block = w.data() + blk * w.block_bytes();
    for (int64_t off = bl.ahead - tail; off < bl.ahead; off += 64)
      _mm_prefetch(reinterpret_cast<const char*>(block + off), LMX_QUANT_PREFETCH_HINT);
    return block;
  };
  auto store = [&](int64_t blk, const float* out) {
    const int rows = static_cast<int>(std::min<int64_t>(R, w.n() - blk * R));
    for (int r = 0; r < rows; ++r) t.y[blk * R + r] = out[r];
  };
  alignas(16) float out[kStreams][R];
  if (prec == ActivationPrecision::f32) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const uint8_t* block = block_at(blk);
      __m256 acc[R];
      for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
      for (int pl = 0; pl < w.num_planes(); ++pl)
        t.f32fn[pl](block + w.plane_offset(pl), block + w.scales_offset(), xp.xs[pl], groups, acc);
      _mm_store_ps(out[0], _mm_add_ps(reduce_rows(acc), bias_term_any(block, w, xp.xsum, groups)));
      store(blk, out[0]);
    }
    return;
  }
  // The chunk as kStreams runs of equal length read side by side (blocks_int), then the
  // blocks left over one at a time.
  const int64_t per = (b1 - b0) / kStreams;
  const uint8_t* blocks[kStreams];
  float* y4[kStreams];
  for (int i = 0; i < kStreams; ++i) y4[i] = out[i];
  for (int64_t j = 0; j < per; ++j) {
    for (int i = 0; i < kStreams; ++i) blocks[i] = block_at(b0 + i * per + j);
    t.intfn(blocks, kStreams, bl, xp, groups, y4);
    for (int i = 0; i < kStreams; ++i) store(b0 + i * per + j, out[i]);
  }
  for (int64_t blk = b0 + kStreams * per; blk < b1; ++blk) {
    blocks[0] = block_at(blk);
    t.intfn(blocks, 1, bl, xp, groups, y4);
    store(blk, out[0]);
  }
}

// One parallel region over the chunks of the weights in `targets` for `rows` rows of x:
// targets[i * per_row + t] is weight t's target for row i (the same weights in every
// row), prepared as xps[i]. Each chunk of weights runs for every row before the next:
// with rows > 1 the rows after the first read it from L2 (batched decode), so the
// weights are streamed from memory once per call, not once per row.
void run_matvec_rows(std::span<const MatvecTarget> targets,
                     size_t per_row,
                     std::span<const XPrep> xps,
                     ActivationPrecision prec,
                     int nt,
                     ThreadPool& pool) {
  thread_local std::vector<MatvecChunk> plan;
  std::vector<MatvecChunk>& chunks = plan;  // the caller's: workers have their own `plan`
  if (xps.size() > 1) {
    plan_chunks(targets.first(per_row), nt, chunks, kRowsChunkBytes, kRowsChunksPerThread);
  } else {
    plan_chunks(targets.first(per_row), nt, chunks);
  }
  // Rows with int16 or int8 x on AVX-512 (few_rows_supported): groups of up to
  // kMaxFewRows rows, each group from one pass over the chunk (the chunk from memory for
  // the first group, from L2 for the others); rows split evenly so that no group is a
  // single row (32 rows: 4 x 8, 23: 8, 8, 7).
  const size_t m = xps.size();
  const bool few = m >= 2 && few_rows_supported(*targets[0].w, prec,
                                                std::min<int64_t>(static_cast<int64_t>(m), kMaxFewRows));
  const size_t groups = (m + static_cast<size_t>(kMaxFewRows) - 1) / static_cast<size_t>(kMaxFewRows);
  // Each row group's f32 factors, laid out once here for every chunk (few_rows_factors;
  // the targets share the rows' preparation, so their quantization groups).
  thread_local std::vector<float> factor_buf;
  std::vector<float>& factors = factor_buf;  // the caller's, as `plan`
  std::vector<size_t> factor_at(groups + 1, 0);
  if (few) {
    const int64_t qgroups = targets[0].w->k() / targets[0].w->group_size();
    for (size_t g = 0, first = 0; g < groups; ++g) {
      const size_t count = (m - first) / (groups - g);
      factor_at[g + 1] = factor_at[g] + few_rows_factors_size(static_cast<int>(count), qgroups);
      first += count;
    }
    factors.resize(factor_at[groups]);
    for (size_t g = 0, first = 0; g < groups; ++g) {
      const size_t count = (m - first) / (groups - g);
      few_rows_factors(xps.data() + first, static_cast<int>(count), qgroups, factors.data() + factor_at[g]);
      first += count;
    }
  }
  auto do_chunk = [&](int64_t c) {
    const MatvecChunk& ch = chunks[static_cast<size_t>(c)];
    if (few) {
      for (size_t g = 0, first = 0; g < groups; ++g) {
        const size_t count = (m - first) / (groups - g);
        float* y[kMaxFewRows];
        for (size_t i = 0; i < count; ++i)
          y[i] = targets[(first + i) * per_row + static_cast<size_t>(ch.target)].y;
        few_rows_avx512(*targets[static_cast<size_t>(ch.target)].w, prec, xps.data() + first,
                        factors.data() + factor_at[g], y, static_cast<int>(count), ch.b0, ch.b1);
        first += count;
      }
      return;
    }
    for (size_t i = 0; i < m; ++i)
      matvec_chunk(targets[i * per_row + static_cast<size_t>(ch.target)], xps[i], prec, ch.b0, ch.b1);
  };
  run_dynamic_on(pool, static_cast<int64_t>(chunks.size()), do_chunk, nt);
}

// x rows prepared for w, each in its own workspace (kept per calling thread across calls).
// From kParallelPrepRows rows on the rows are split over the threads (each workspace is
// written by one thread): a 32-row decode step prepared them on one thread while the
// others waited, 3% of its time.
constexpr int64_t kParallelPrepRows = 4;
std::vector<XPrep> prepare_rows(const float* x, int64_t ldx, int64_t m, const PackedQuantWeight& w,
                                ActivationPrecision prec, ThreadPool& pool) {
  thread_local std::vector<std::unique_ptr<XWorkspace>> ws;
  while (ws.size() < static_cast<size_t>(m)) ws.push_back(std::make_unique<XWorkspace>());
  std::vector<XPrep> xps(static_cast<size_t>(m));
  auto& mine = ws;  // the caller's workspaces, also where the workers write
  auto prep = [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      xps[static_cast<size_t>(i)] = prepare_x(x + i * ldx, w, prec, *mine[static_cast<size_t>(i)]);
  };
  if (m < kParallelPrepRows || pool.num_threads() < 2) {
    prep(0, m);
  } else {
    // Dynamic: a thread that has lost its core (a loaded machine) is not waited for.
    run_dynamic_on(pool, m, [&](int64_t i) { prep(i, i + 1); });
  }
  return xps;
}

// m rows of x over one weight (m = 1: the decode matvec).
void packed_matvec(const float* x,
                   int64_t ldx,
                   int64_t m,
                   const PackedQuantWeight& w,
                   float* y,
                   int64_t ldy,
                   ActivationPrecision prec,
                   ThreadPool& pool) {
  const std::vector<XPrep> xps = prepare_rows(x, ldx, m, w, prec, pool);
  std::vector<MatvecTarget> ts;
  for (int64_t i = 0; i < m; ++i) ts.push_back(make_target(w, y + i * ldy, prec));
  run_matvec_rows(ts, 1, xps, prec, matvec_threads(pool, ts[0].blocks, w.n(), w.k()), pool);
}

// x prepared for the first weight serves every weight with the same input layout.
bool same_input_layout(const PackedQuantWeight& a, const PackedQuantWeight& b) {
  return a.k() == b.k() && a.k_padded() == b.k_padded() && a.bits() == b.bits() &&
         a.group_size() == b.group_size();
}

// Several weights over m rows of x: one preparation per row, one region over the union
// of their chunks.
void packed_matvec_multi(const float* x,
                         int64_t ldx,
                         int64_t m,
                         std::span<const QuantMatmulTarget> targets,
                         ActivationPrecision asked,
                         ThreadPool& pool) {
  const PackedQuantWeight& w0 = *targets[0].w;
  const ActivationPrecision prec = effective_precision(w0, asked);
  const std::vector<XPrep> xps = prepare_rows(x, ldx, m, w0, prec, pool);
  std::vector<MatvecTarget> ts;
  int64_t blocks = 0, n = 0;
  for (int64_t row = 0; row < m; ++row)
    for (const QuantMatmulTarget& t : targets) ts.push_back(make_target(*t.w, t.y + row * t.ldy, prec));
  for (const QuantMatmulTarget& t : targets) {
    blocks += (t.w->n() + R - 1) / R;
    n += t.w->n();
  }
  run_matvec_rows(ts, targets.size(), xps, prec, matvec_threads(pool, blocks, n, w0.k()), pool);
}

// One row of x per weight (its own input each), one region over the union of their
// chunks. Each x is prepared for its weight as packed_matvec prepares it, or shared with
// an earlier target of the same input pointer and layout (the same bytes).
void packed_matvec_each(std::span<const float* const> xs,
                        std::span<const QuantMatmulTarget> targets,
                        ActivationPrecision prec,
                        ThreadPool& pool) {
  thread_local std::vector<std::unique_ptr<XWorkspace>> ws;
  thread_local std::vector<MatvecChunk> plan;
  std::vector<MatvecChunk>& chunks = plan;  // the caller's: workers have their own `plan`
  while (ws.size() < targets.size()) ws.push_back(std::make_unique<XWorkspace>());
  XPrep xps[kMaxSharedTargets];
  MatvecTarget ts[kMaxSharedTargets];
  int64_t blocks = 0, nk = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    const PackedQuantWeight& w = *targets[i].w;
    size_t j = 0;
    while (j < i && !(xs[j] == xs[i] && same_input_layout(*targets[j].w, w))) ++j;
    xps[i] = j < i ? xps[j] : prepare_x(xs[i], w, prec, *ws[i]);
    ts[i] = make_target(w, targets[i].y, prec);
    blocks += ts[i].blocks;
    nk += w.n() * w.k();
  }
  const std::span<const MatvecTarget> all(ts, targets.size());
  const int nt = matvec_threads(pool, blocks, 1, nk);
  plan_chunks(all, nt, chunks);
  run_dynamic_on(
      pool, static_cast<int64_t>(chunks.size()),
      [&](int64_t c) {
        const MatvecChunk& ch = chunks[static_cast<size_t>(c)];
        matvec_chunk(ts[ch.target], xps[ch.target], prec, ch.b0, ch.b1);
      },
      nt);
}

// 8 quantized values (as int32 lanes) of an MLX-layout row at input p.
template <int BITS>
inline __m256i mlx_q8(const uint32_t* row, int64_t p) {
  const uint8_t* src = reinterpret_cast<const uint8_t*>(row) + (p / 8) * BITS;
  uint64_t v = 0;
  std::memcpy(&v, src, BITS);
  constexpr uint32_t mask = (1u << BITS) - 1u;
  if constexpr (BITS <= 4) {
    const __m256i sh =
        _mm256_setr_epi32(0, BITS, 2 * BITS, 3 * BITS, 4 * BITS, 5 * BITS, 6 * BITS, 7 * BITS);
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(v)), sh),
                            _mm256_set1_epi32(static_cast<int>(mask)));
  } else {
    const auto lo = static_cast<int>(v & ((uint64_t{1} << (4 * BITS)) - 1));
    const auto hi = static_cast<int>(v >> (4 * BITS));
    const __m256i sh = _mm256_setr_epi32(0, BITS, 2 * BITS, 3 * BITS, 0, BITS, 2 * BITS, 3 * BITS);
    return _mm256_and_si256(
        _mm256_srlv_epi32(_mm256_setr_epi32(lo, lo, lo, lo, hi, hi, hi, hi), sh),
        _mm256_set1_epi32(static_cast<int>(mask)));
  }
}

// Matvec on the MLX layout: 4 rows per pass, raw q . x per group, then scale and bias.
template <int BITS, Dtype SD>
void view_matvec_rows(
    const float* x, const QuantView& w, const float* xsum, float* y, int64_t r0, int64_t r1) {
  const int64_t ws = w.w_row_stride();
  const int64_t ss = w.s_row_stride();
  const int64_t gs = w.group_size, groups = w.k / gs;
  int64_t r = r0;
  for (; r < r1; r += R) {
    const int rows = static_cast<int>(std::min<int64_t>(R, r1 - r));
    const uint32_t* wr[R];
    for (int i = 0; i < R; ++i) wr[i] = w.w + (r + std::min(i, rows - 1)) * ws;
    float out[R] = {0, 0, 0, 0};
    __m256 acc[R];
    for (int i = 0; i < R; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      __m256 dot[R];
      for (int i = 0; i < R; ++i) dot[i] = _mm256_setzero_ps();
      // Four short row streams per block: fetch the next block's rows at this offset.
      for (int i = 0; i < R; ++i)
        _mm_prefetch(reinterpret_cast<const char*>(wr[i] + R * ws + g * gs * BITS / 32),
                     _MM_HINT_T0);
      for (int64_t p = g * gs; p < (g + 1) * gs; p += 8) {
        const __m256 xv = _mm256_loadu_ps(x + p);
        for (int i = 0; i < R; ++i)
          dot[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mlx_q8<BITS>(wr[i], p)), xv, dot[i]);
      }
      for (int i = 0; i < rows; ++i) {
        const int64_t si = (r + i) * ss + g;
        acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(load_scalar(w.scales, SD, si)), dot[i], acc[i]);
        out[i] += load_scalar(w.biases, SD, si) * xsum[g];
      }
    }
    for (int i = 0; i < rows; ++i) y[r + i] = hsum(acc[i]) + out[i];
  }
}

template <int BITS, Dtype SD>
void view_matmul(const float* x,
                 int64_t ldx,
                 const QuantView& w,
                 float* y,
                 int64_t ldy,
                 int64_t m,
                 ThreadPool& pool) {
  if (m == 1) {
    thread_local Scratch xsum_buf;
    const int64_t gs = w.group_size, groups = w.k / gs;
    float* xsum = xsum_buf.get(static_cast<size_t>(groups));
    for (int64_t g = 0; g < groups; ++g) {
      float s = 0.0f;
      for (int64_t j = 0; j < gs; ++j) s += x[g * gs + j];
      xsum[g] = s;
    }
    const int64_t quads = (w.n + R - 1) / R;
    const int nt =
        static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(pool.num_threads(), std::min<int64_t>(quads / 16, detail::threads_for_weights(w.n, w.k)))));
    run_on(
        pool,
        [&](int t, int tn) {
          const int64_t a = std::min(w.n, quads * t / tn * R),
                        b = std::min(w.n, quads * (t + 1) / tn * R);
          if (a < b) view_matvec_rows<BITS, SD>(x, w, xsum, y, a, b);
        },
        nt);
    return;
  }
  const int64_t ws = w.w_row_stride();
  const int64_t ss = w.s_row_stride();
  const int gshift = __builtin_ctz(static_cast<unsigned>(w.group_size));
  auto decode8 = [&](int64_t row, int64_t p) {
    const int64_t si = row * ss + (p >> gshift);
    return _mm256_fmadd_ps(_mm256_set1_ps(load_scalar(w.scales, SD, si)),
                           _mm256_cvtepi32_ps(mlx_q8<BITS>(w.w + row * ws, p)),
                           _mm256_set1_ps(load_scalar(w.biases, SD, si)));
  };
  gemm_nt_rows(x, ldx, m, w.n, w.k, y, ldy, decode8, scalar_from_decode8(decode8), pool);
}

template <Dtype SD>
void view_matmul_bits(const float* x,
                      int64_t ldx,
                      const QuantView& w,
                      float* y,
                      int64_t ldy,
                      int64_t m,
                      ThreadPool& pool) {
  switch (w.bits) {
    case 2:
      return view_matmul<2, SD>(x, ldx, w, y, ldy, m, pool);
    case 3:
      return view_matmul<3, SD>(x, ldx, w, y, ldy, m, pool);
    case 4:
      return view_matmul<4, SD>(x, ldx, w, y, ldy, m, pool);
    case 5:
      return view_matmul<5, SD>(x, ldx, w, y, ldy, m, pool);
    case 6:
      return view_matmul<6, SD>(x, ldx, w, y, ldy, m, pool);
    default:
      return view_matmul<8, SD>(x, ldx, w, y, ldy, m, pool);
  }
}

// From 4 rows on, the activation precision of the GEMM tier that ran such batches before
// the row-looped matvec took them: int8 stays int8 only with AVX-512 (VNNI), else x is
// rounded to int16, so a batch gets the precision it always had.
ActivationPrecision rows_precision(int64_t m, ActivationPrecision asked) {
  return m >= 4 && asked == ActivationPrecision::int8 && !cpu_features().use_avx512()
             ? ActivationPrecision::int16
             : asked;
}

}  // namespace

void quantized_matmul_view_avx2(const float* x,
                                int64_t ldx,
                                const QuantView& w,
                                float* y,
                                int64_t ldy,
                                int64_t m,
                                ThreadPool& pool) {
  switch (w.scale_dtype) {
    case Dtype::f16:
      return view_matmul_bits<Dtype::f16>(x, ldx, w, y, ldy, m, pool);
    case Dtype::bf16:
      return view_matmul_bits<Dtype::bf16>(x, ldx, w, y, ldy, m, pool);
    default:
      return view_matmul_bits<Dtype::f32>(x, ldx, w, y, ldy, m, pool);
  }
}

void quantized_matmul_packed_avx2(const float* x,
                                  int64_t ldx,
                                  const PackedQuantWeight& w,
                                  float* y,
                                  int64_t ldy,
                                  int64_t m,
                                  const QuantMatmulOptions& options,
                                  ThreadPool& pool) {
  if (m < kMinGemmRows) {
    packed_matvec(x, ldx, m, w, y, ldy, effective_precision(w, rows_precision(m, options.activations)), pool);
    return;
  }
  packed_gemm_avx2(x, ldx, w, y, ldy, m, options.activations, pool);
}

void quantized_matmul_packed_multi_avx2(const float* x,
                                        int64_t ldx,
                                        std::span<const QuantMatmulTarget> targets,
                                        int64_t m,
                                        const QuantMatmulOptions& options,
                                        ThreadPool& pool) {
  const ActivationPrecision asked = rows_precision(m, options.activations);
  bool shared = m < kMinGemmRows && targets.size() <= kMaxSharedTargets;
  for (const auto& t : targets)
    shared = shared && same_input_layout(*targets[0].w, *t.w) &&
             effective_precision(*t.w, asked) == effective_precision(*targets[0].w, asked);
  if (!shared) {
    for (const auto& t : targets)
      cpu::quantized_matmul(x, ldx, *t.w, t.y, t.ldy, m, options, &pool);
    return;
  }
  packed_matvec_multi(x, ldx, m, targets, asked, pool);
}

void quantized_matvec_each_avx2(std::span<const float* const> xs,
                                std::span<const QuantMatmulTarget> targets,
                                const QuantMatmulOptions& options,
                                ThreadPool& pool) {
  if (targets.empty()) return;
  const ActivationPrecision prec = effective_precision(*targets[0].w, rows_precision(1, options.activations));
  bool shared = kMinGemmRows > 1 && targets.size() <= kMaxSharedTargets;
  for (const auto& t : targets)
    shared = shared && t.w->n() > 0 && effective_precision(*t.w, rows_precision(1, options.activations)) == prec;
  if (!shared) {
    for (size_t i = 0; i < targets.size(); ++i)
      cpu::quantized_matmul(xs[i], 0, *targets[i].w, targets[i].y, 0, 1, options, &pool);
    return;
  }
  packed_matvec_each(xs, targets, prec, pool);
}

}  // namespace lmx::cpu::detail
