// AVX2/FMA/F16C GEMM (prefill: m >= 4 rows of x) on packed MLX affine weights,
// y = x @ dequant(W)^T, with two activation precisions:
// - f32: 16-row slivers of W are dequantized into the packed f32 GEMM (gemm_avx2.h).
// - int16: each x row is rounded once per call to int16 with one scale per group (as the
//   decode kernels' int16 activations), W's slivers are unpacked to its integer q values, and
//   a 6x16 vpmaddwd microkernel sums q * x over each group in int32; at the end of a group
//   the sums are scaled by s[g, j] * dx[i, g] and the bias term b[g, j] * sum(x)[i, g] is
//   added in f32. vpmaddwd does 16 multiply-adds where an FMA does 8.
#include <immintrin.h>

#include <cstring>

#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/gemm_avx2.h"
#include "lmx/backend/cpu/matmul_kernels.h"
#include "lmx/backend/cpu/quant_avx2_shared.h"
#include "lmx/backend/cpu/quant_gemm_integer.h"
#include "lmx/base/thread_pool.h"

namespace lmx::cpu::detail {
namespace {

using namespace avx2;
constexpr int R = PackedQuantWeight::kRows;

// ---- f32 activations --------------------------------------------------------------------

template <Dtype SD>
void gemm_f32(const float* x,
              int64_t ldx,
              const PackedQuantWeight& w,
              float* y,
              int64_t ldy,
              int64_t m,
              ThreadPool& pool) {
  const int gshift = __builtin_ctz(static_cast<unsigned>(w.group_size()));
  auto decode8 = [&](int64_t row, int64_t p) {
    const uint8_t* block = w.data() + (row >> 2) * w.block_bytes();
    const int64_t i = (p >> gshift) * R + (row & 3);
    const float s = load_scalar(block + w.scales_offset(), SD, i);
    const float b = load_scalar(block + w.biases_offset(), SD, i);
    return _mm256_fmadd_ps(_mm256_set1_ps(s), _mm256_cvtepi32_ps(packed_q8(w, row, p)),
                           _mm256_set1_ps(b));
  };
  gemm_nt_rows(x, ldx, m, w.n(), w.k(), y, ldy, decode8, scalar_from_decode8(decode8), pool);
}

// ---- int16 activations ------------------------------------------------------------------

// Inputs per k block (a multiple of every group size) and rows per A block: a B sliver is
// 768 pairs x 16 columns x 4 bytes = 48 KiB (+ the groups' scales and biases), an A block
// 24 x 1536 x 2 bytes = 72 KiB, both in L2. Against 256 / 96 (an 8 KiB sliver in L1):
// +13-17% on the 512-row ffn_up shapes (kernel_report int16-x 213 -> 237-251
// GFLOP/s-equivalent), the best of kc 256-2048 x mc 12-96 measured on Zen 3 (2 threads);
// fewer passes over C and fewer microkernel epilogues, as in the 16-bit float GEMM.
constexpr int64_t kKC16 = 1536;
constexpr int64_t kMC16 = 24;
static_assert(kMR == kInt16SliverRows && kNR == kInt16SliverCols);

// An A sliver of 32-bit steps (int16 pairs or int8 quads of inputs): dst[s * 6 + ii] = the
// 4 bytes of row i0 + ii at inputs [p0, p0 + kc), step s; rows ii >= mr are zero.
template <class T>
void pack_a_steps(int32_t* dst, const T* q, int64_t k, int64_t i0, int mr, int64_t p0, int64_t kc) {
  constexpr int64_t kPer = 4 / sizeof(T);
  for (int ii = 0; ii < kMR; ++ii) {
    if (ii >= mr) {
      for (int64_t st = 0; st < kc / kPer; ++st) dst[st * kMR + ii] = 0;
      continue;
    }
    const T* row = q + (i0 + ii) * k + p0;
    for (int64_t st = 0; st < kc / kPer; ++st) std::memcpy(dst + st * kMR + ii, row + kPer * st, 4);
  }
}

// A B sliver group's s[g, j] then b[g, j] as f32 (16 each), zero for columns >= nr.
void pack_group_scales(float* s, const PackedQuantWeight& w, int64_t j0, int nr, int64_t g) {
  float* b = s + kNR;
  for (int jj = 0; jj < kNR; ++jj) {
    if (jj >= nr) {
      s[jj] = b[jj] = 0.0f;
      continue;
    }
    const uint8_t* block = w.data() + ((j0 + jj) >> 2) * w.block_bytes();
    const int64_t i = g * R + ((j0 + jj) & 3);
    s[jj] = load_scalar(block + w.scales_offset(), w.scale_dtype(), i);
    b[jj] = load_scalar(block + w.biases_offset(), w.scale_dtype(), i);
  }
}

}  // namespace

namespace {

// x rounded per row and group to T (quantize_group gives the group's scale), with each
// group's plain sum; rows padded to kMR with zero scales and sums.
template <typename X, typename T, typename QuantizeGroup>
X quantize_x(const float* x, int64_t ldx, int64_t m, int64_t k, int gs, ThreadPool& pool,
             QuantizeGroup quantize_group) {
  thread_local Scratch qbuf, dxbuf, sumbuf;
  const int64_t groups = k / gs, mp = (m + kMR - 1) / kMR * kMR;
  auto* q = reinterpret_cast<T*>(qbuf.get(static_cast<size_t>((m * k * static_cast<int64_t>(sizeof(T)) + 3) / 4)));
  float* dx = dxbuf.get(static_cast<size_t>(mp * groups));
  float* sum = sumbuf.get(static_cast<size_t>(mp * groups));
  std::memset(dx + m * groups, 0, static_cast<size_t>((mp - m) * groups) * sizeof(float));
  std::memset(sum + m * groups, 0, static_cast<size_t>((mp - m) * groups) * sizeof(float));
  parallel_for_on(pool, m, 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t g = 0; g < groups; ++g) {
        const float* xg = x + i * ldx + g * gs;
        dx[i * groups + g] = quantize_group(xg, gs, q + i * k + g * gs);
        sum[i * groups + g] = group_sum(xg, gs);
      }
  });
  return {q, dx, sum, k, groups};
}

}  // namespace

XInt16 quantize_x_int16(const float* x, int64_t ldx, int64_t m, int64_t k, int gs, ThreadPool& pool) {
  return quantize_x<XInt16, int16_t>(x, ldx, m, k, gs, pool, quantize_group_int16);
}

void pack_a_int16(int32_t* dst, const XInt16& x, int64_t i0, int mr, int64_t p0, int64_t kc) {
  pack_a_steps(dst, x.q, x.k, i0, mr, p0, kc);
}

void pack_b_int16(uint8_t* dst, const PackedQuantWeight& w, int64_t j0, int nr, int64_t p0, int64_t kc) {
  const int gs = w.group_size();
  for (int64_t g0 = p0; g0 < p0 + kc; g0 += gs) {
    auto* q = reinterpret_cast<int32_t*>(dst);
    for (int64_t p = g0; p < g0 + gs; p += 8)
      for (int half = 0; half < 2; ++half) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) {
          const int jj = half * 8 + i;
          r[i] = _mm256_castsi256_ps(jj < nr ? packed_q8(w, j0 + jj, p) : _mm256_setzero_si256());
        }
        transpose8(r);  // r[e]: input p + e of the 8 columns
        for (int e = 0; e < 4; ++e) {
          const __m256i lo = _mm256_castps_si256(r[2 * e]), hi = _mm256_castps_si256(r[2 * e + 1]);
          _mm256_store_si256(reinterpret_cast<__m256i*>(q + ((p - g0) / 2 + e) * kNR + half * 8),
                             _mm256_or_si256(lo, _mm256_slli_epi32(hi, 16)));
        }
      }
    pack_group_scales(reinterpret_cast<float*>(dst + gs / 2 * kNR * 4), w, j0, nr, g0 / gs);
    dst += group_bytes_int16(gs);
  }
}

XInt8 quantize_x_int8(const float* x, int64_t ldx, int64_t m, int64_t k, int gs, ThreadPool& pool) {
  return quantize_x<XInt8, int8_t>(x, ldx, m, k, gs, pool, quantize_group_int8);
}

void pack_a_int8(int32_t* dst, const XInt8& x, int64_t i0, int mr, int64_t p0, int64_t kc) {
  pack_a_steps(dst, x.q, x.k, i0, mr, p0, kc);
}

void pack_b_int8(uint8_t* dst, const PackedQuantWeight& w, int64_t j0, int nr, int64_t p0, int64_t kc) {
  const int gs = w.group_size();
  for (int64_t g0 = p0; g0 < p0 + kc; g0 += gs) {
    auto* q = reinterpret_cast<int32_t*>(dst);
    for (int64_t p = g0; p < g0 + gs; p += 8)
      for (int half = 0; half < 2; ++half) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) {
          const int jj = half * 8 + i;
          r[i] = _mm256_castsi256_ps(jj < nr ? packed_q8(w, j0 + jj, p) : _mm256_setzero_si256());
        }
        transpose8(r);  // r[e]: input p + e of the 8 columns, q in 0 .. 255
        for (int e = 0; e < 2; ++e) {
          const __m256i b0 = _mm256_castps_si256(r[4 * e]), b1 = _mm256_castps_si256(r[4 * e + 1]);
          const __m256i b2 = _mm256_castps_si256(r[4 * e + 2]), b3 = _mm256_castps_si256(r[4 * e + 3]);
          const __m256i quad = _mm256_or_si256(
              _mm256_or_si256(b0, _mm256_slli_epi32(b1, 8)),
              _mm256_or_si256(_mm256_slli_epi32(b2, 16), _mm256_slli_epi32(b3, 24)));
          _mm256_store_si256(reinterpret_cast<__m256i*>(q + ((p - g0) / 4 + e) * kNR + half * 8),
                             quad);
        }
      }
    pack_group_scales(reinterpret_cast<float*>(dst + gs / 4 * kNR * 4), w, j0, nr, g0 / gs);
    dst += group_bytes_int8(gs);
  }
}

namespace {

// The 6x16 pair loop of micro16_6x16 (below), with MADD(b, acc) one multiply-accumulate:
// acc (ymm `acc`) += the pairs of ymm `b` times the broadcast x pair in ymm14.
#define LMX_MADD_PLAIN(B, ACC) \
  "vpmaddwd %%ymm" #B ", %%ymm14, %%ymm15\n\t" "vpaddd %%ymm15, %%ymm" #ACC ", %%ymm" #ACC "\n\t"
// AVX-VNNI: one instruction, no temporary ({vex}: the 256-bit VEX form, not AVX512_VNNI's).
#define LMX_MADD_VNNI(B, ACC) "%{vex%} vpdpwssd %%ymm14, %%ymm" #B ", %%ymm" #ACC "\n\t"
#define LMX_INT16_PAIR_LOOP(MADD) \
  asm volatile( \
      "vpxor %%xmm0, %%xmm0, %%xmm0\n\t" \
      "vpxor %%xmm1, %%xmm1, %%xmm1\n\t" \
      "vpxor %%xmm2, %%xmm2, %%xmm2\n\t" \
      "vpxor %%xmm3, %%xmm3, %%xmm3\n\t" \
      "vpxor %%xmm4, %%xmm4, %%xmm4\n\t" \
      "vpxor %%xmm5, %%xmm5, %%xmm5\n\t" \
      "vpxor %%xmm6, %%xmm6, %%xmm6\n\t" \
      "vpxor %%xmm7, %%xmm7, %%xmm7\n\t" \
      "vpxor %%xmm8, %%xmm8, %%xmm8\n\t" \
      "vpxor %%xmm9, %%xmm9, %%xmm9\n\t" \
      "vpxor %%xmm10, %%xmm10, %%xmm10\n\t" \
      "vpxor %%xmm11, %%xmm11, %%xmm11\n\t" \
      "1:\n\t" \
      "vmovdqa (%[b]), %%ymm12\n\t" \
      "vmovdqa 32(%[b]), %%ymm13\n\t" \
      "vpbroadcastd 0(%[a]), %%ymm14\n\t" \
      MADD(12, 0) \
      MADD(13, 1) \
      "vpbroadcastd 4(%[a]), %%ymm14\n\t" \
      MADD(12, 2) \
      MADD(13, 3) \
      "vpbroadcastd 8(%[a]), %%ymm14\n\t" \
      MADD(12, 4) \
      MADD(13, 5) \
      "vpbroadcastd 12(%[a]), %%ymm14\n\t" \
      MADD(12, 6) \
      MADD(13, 7) \
      "vpbroadcastd 16(%[a]), %%ymm14\n\t" \
      MADD(12, 8) \
      MADD(13, 9) \
      "vpbroadcastd 20(%[a]), %%ymm14\n\t" \
      MADD(12, 10) \
      MADD(13, 11) \
      "add $24, %[a]\n\t" \
      "add $64, %[b]\n\t" \
      "dec %[n]\n\t" \
      "jnz 1b\n\t" \
      "vmovdqa %%ymm0, 0(%[out])\n\t" \
      "vmovdqa %%ymm1, 32(%[out])\n\t" \
      "vmovdqa %%ymm2, 64(%[out])\n\t" \
      "vmovdqa %%ymm3, 96(%[out])\n\t" \
      "vmovdqa %%ymm4, 128(%[out])\n\t" \
      "vmovdqa %%ymm5, 160(%[out])\n\t" \
      "vmovdqa %%ymm6, 192(%[out])\n\t" \
      "vmovdqa %%ymm7, 224(%[out])\n\t" \
      "vmovdqa %%ymm8, 256(%[out])\n\t" \
      "vmovdqa %%ymm9, 288(%[out])\n\t" \
      "vmovdqa %%ymm10, 320(%[out])\n\t" \
      "vmovdqa %%ymm11, 352(%[out])\n\t" \
      : [a] "+r"(a), [b] "+r"(b), [n] "+r"(pairs) \
      : [out] "r"(&acc[0][0]) \
      : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", \
        "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15")

// C tile (mr x nr of 6 x 16) (+)= the A sliver times the B sliver over `groups` groups of gs
// inputs. dx[ii * grs + g], xsum[ii * grs + g]: row ii's scale and input sum in group g.
template <int GS, bool kVnni>
void micro16_6x16(int64_t groups,
                  const int32_t* a,
                  const uint8_t* b,
                  const float* dx,
                  const float* xsum,
                  int64_t grs,
                  float* c,
                  int64_t c_rs,
                  int mr,
                  int nr,
                  bool read_c) {
  alignas(32) float tile[kMR][kNR] = {};
  for (int64_t g = 0; g < groups; ++g) {
    // The pair loop in assembly: 12 accumulators (ymm0-11), the two B vectors, the
    // broadcast and one temporary are exactly the 16 ymm registers, and g++ (hoisting the 6
    // broadcasts) spilled accumulators to the stack. acc[ii][h] = row ii, columns 8h..8h+7.
    alignas(32) __m256i acc[kMR][2];
    int64_t pairs = GS / 2;
    if constexpr (kVnni)
      LMX_INT16_PAIR_LOOP(LMX_MADD_VNNI);
    else
      LMX_INT16_PAIR_LOOP(LMX_MADD_PLAIN);
    const auto* sb = reinterpret_cast<const float*>(b);
    const __m256 s0 = _mm256_load_ps(sb), s1 = _mm256_load_ps(sb + 8);
    const __m256 b0 = _mm256_load_ps(sb + 16), b1 = _mm256_load_ps(sb + 24);
    b += 2 * kNR * 4;
    for (int ii = 0; ii < kMR; ++ii) {
      const __m256 d = _mm256_set1_ps(dx[ii * grs + g]);
      const __m256 xs = _mm256_set1_ps(xsum[ii * grs + g]);
      __m256 t0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[ii][0]), _mm256_mul_ps(s0, d),
                                  _mm256_load_ps(tile[ii]));
      __m256 t1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[ii][1]), _mm256_mul_ps(s1, d),
                                  _mm256_load_ps(tile[ii] + 8));
      _mm256_store_ps(tile[ii], _mm256_fmadd_ps(b0, xs, t0));
      _mm256_store_ps(tile[ii] + 8, _mm256_fmadd_ps(b1, xs, t1));
    }
  }
  if (mr == kMR && nr == kNR) {
    for (int ii = 0; ii < kMR; ++ii)
      for (int h = 0; h < 2; ++h) {
        float* out = c + ii * c_rs + h * 8;
        __m256 v = _mm256_load_ps(tile[ii] + h * 8);
        if (read_c) v = _mm256_add_ps(v, _mm256_loadu_ps(out));
        _mm256_storeu_ps(out, v);
      }
    return;
  }
  for (int ii = 0; ii < mr; ++ii)
    for (int jj = 0; jj < nr; ++jj) {
      float& out = c[ii * c_rs + jj];
      out = read_c ? out + tile[ii][jj] : tile[ii][jj];
    }
}

// C[0:m, n0:n1] = x @ dequant(W)^T on the calling thread, blocked as gemm_range.
template <int GS, bool kVnni>
void gemm16_range(const XInt16& x,
                  const PackedQuantWeight& w,
                  int64_t m,
                  int64_t n0,
                  int64_t n1,
                  float* y,
                  int64_t ldy) {
  const int64_t k = w.k();
  // Workspaces sized to the call: the largest k block and column panel it uses.
  const int64_t kc_max = std::min(kKC16, k);
  const int64_t slivers = (std::min(kNC, n1 - n0) + kNR - 1) / kNR;
  thread_local Scratch a_buf, b_buf;
  auto* ap = reinterpret_cast<int32_t*>(a_buf.get(static_cast<size_t>(kMC16 * kc_max / 2)));
  const int64_t sliver_bytes = kc_max / GS * group_bytes_int16(GS);
  auto* bp = reinterpret_cast<uint8_t*>(b_buf.get(static_cast<size_t>(slivers * sliver_bytes / 4)));
  for (int64_t jc = n0; jc < n1; jc += kNC) {
    const int64_t nc = std::min(kNC, n1 - jc);
    for (int64_t pc = 0; pc < k; pc += kKC16) {
      const int64_t kc = std::min(kKC16, k - pc);
      const int64_t sb = kc / GS * group_bytes_int16(GS);
      for (int64_t jr = 0; jr < nc; jr += kNR)
        pack_b_int16(bp + jr / kNR * sb, w, jc + jr, static_cast<int>(std::min<int64_t>(kNR, nc - jr)),
                 pc, kc);
      for (int64_t ic = 0; ic < m; ic += kMC16) {
        const int64_t mc = std::min(kMC16, m - ic);
        for (int64_t ir = 0; ir < mc; ir += kMR)
          pack_a_int16(ap + ir * kc / 2, x, ic + ir, static_cast<int>(std::min<int64_t>(kMR, mc - ir)),
                   pc, kc);
        for (int64_t jr = 0; jr < nc; jr += kNR) {
          const int nr = static_cast<int>(std::min<int64_t>(kNR, nc - jr));
          for (int64_t ir = 0; ir < mc; ir += kMR) {
            const int mr = static_cast<int>(std::min<int64_t>(kMR, mc - ir));
            const int64_t g0 = (ic + ir) * x.groups + pc / GS;
            micro16_6x16<GS, kVnni>(kc / GS, ap + ir * kc / 2, bp + jr / kNR * sb, x.dx + g0,
                             x.sum + g0, x.groups, y + (ic + ir) * ldy + jc + jr, ldy, mr, nr,
                             pc > 0);
          }
        }
      }
    }
  }
}

template <int GS>
void gemm_int16(const float* x,
                int64_t ldx,
                const PackedQuantWeight& w,
                float* y,
                int64_t ldy,
                int64_t m,
                ThreadPool& pool) {
  const XInt16 xq = quantize_x_int16(x, ldx, m, w.k(), GS, pool);
  const bool vnni = cpu_features().use_avx_vnni();
  run_on(pool, [&](int t, int nt) {
    int64_t n0, n1;
    split_n(w.n(), t, nt, n0, n1);
    if (n0 < n1) {
      if (vnni)
        gemm16_range<GS, true>(xq, w, m, n0, n1, y, ldy);
      else
        gemm16_range<GS, false>(xq, w, m, n0, n1, y, ldy);
    }
  });
}

}  // namespace

void packed_gemm_avx2(const float* x,
                      int64_t ldx,
                      const PackedQuantWeight& w,
                      float* y,
                      int64_t ldy,
                      int64_t m,
                      ActivationPrecision activations,
                      ThreadPool& pool) {
  if (activations != ActivationPrecision::f32) {
    switch (w.group_size()) {
      case 32:
        return gemm_int16<32>(x, ldx, w, y, ldy, m, pool);
      case 64:
        return gemm_int16<64>(x, ldx, w, y, ldy, m, pool);
      case 128:
        return gemm_int16<128>(x, ldx, w, y, ldy, m, pool);
      default:
        break;
    }
  }
  switch (w.scale_dtype()) {
    case Dtype::f16:
      return gemm_f32<Dtype::f16>(x, ldx, w, y, ldy, m, pool);
    case Dtype::bf16:
      return gemm_f32<Dtype::bf16>(x, ldx, w, y, ldy, m, pool);
    default:
      return gemm_f32<Dtype::f32>(x, ldx, w, y, ldy, m, pool);
  }
}

}  // namespace lmx::cpu::detail
