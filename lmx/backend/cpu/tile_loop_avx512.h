// Internal: the 12 x 32 step loop of the AVX-512 dot-product GEMMs (quant_gemm_avx512.cpp:
// vpdpwssd / vpdpbusd; matmul_avx512.cpp: vdpbf16ps, and vfmadd231ps on f32), as an inline-assembly macro. The
// including function names its operands a0, a1 (A slivers: 6 rows of 32-bit steps each),
// b0, b1 (B slivers: 16 columns, 64 bytes a step), steps (int64_t, > 0) and acc (12 x 2
// zmm-sized, 64-byte aligned), where the 24 sums are stored at the end.
#pragma once

// One multiply-accumulate of the step loop below: zmm ACC += zmm B (weights) times the 32-bit
// step of x at OFF(%[A]), broadcast from memory by the instruction itself.
#define LMX_DP(INSN, OFF, A, B, ACC) \
  INSN " " #OFF "(%[" #A "])%{1to16%}, %%zmm" #B ", %%zmm" #ACC "\n\t"
// The 12 x 32 tile's step loop (INSN vpdpwssd: int16 pairs; vpdpbusd: u8 weights times s8
// x quads; vdpbf16ps: bf16 pairs into f32; vfmadd231ps: f32 steps), in assembly as in the AVX2 kernel (g++ 12 copied intrinsic
// accumulators between registers every iteration): zmm0-23 accumulate (row r, columns
// 16h..16h+15 in zmm 2r + h), zmm24-25 hold the B vectors. 24 independent sums keep both
// VNNI pipes busy through their latency; 2 B loads per 24 VNNI instructions keep the
// slivers' L2 traffic low.
#define LMX_VNNI_TILE_LOOP(INSN) \
  asm volatile( \
  "vpxord %%zmm0, %%zmm0, %%zmm0\n\t" \
  "vpxord %%zmm1, %%zmm1, %%zmm1\n\t" \
  "vpxord %%zmm2, %%zmm2, %%zmm2\n\t" \
  "vpxord %%zmm3, %%zmm3, %%zmm3\n\t" \
  "vpxord %%zmm4, %%zmm4, %%zmm4\n\t" \
  "vpxord %%zmm5, %%zmm5, %%zmm5\n\t" \
  "vpxord %%zmm6, %%zmm6, %%zmm6\n\t" \
  "vpxord %%zmm7, %%zmm7, %%zmm7\n\t" \
  "vpxord %%zmm8, %%zmm8, %%zmm8\n\t" \
  "vpxord %%zmm9, %%zmm9, %%zmm9\n\t" \
  "vpxord %%zmm10, %%zmm10, %%zmm10\n\t" \
  "vpxord %%zmm11, %%zmm11, %%zmm11\n\t" \
  "vpxord %%zmm12, %%zmm12, %%zmm12\n\t" \
  "vpxord %%zmm13, %%zmm13, %%zmm13\n\t" \
  "vpxord %%zmm14, %%zmm14, %%zmm14\n\t" \
  "vpxord %%zmm15, %%zmm15, %%zmm15\n\t" \
  "vpxord %%zmm16, %%zmm16, %%zmm16\n\t" \
  "vpxord %%zmm17, %%zmm17, %%zmm17\n\t" \
  "vpxord %%zmm18, %%zmm18, %%zmm18\n\t" \
  "vpxord %%zmm19, %%zmm19, %%zmm19\n\t" \
  "vpxord %%zmm20, %%zmm20, %%zmm20\n\t" \
  "vpxord %%zmm21, %%zmm21, %%zmm21\n\t" \
  "vpxord %%zmm22, %%zmm22, %%zmm22\n\t" \
  "vpxord %%zmm23, %%zmm23, %%zmm23\n\t" \
  "1:\n\t" \
  "vmovdqa64 (%[b0]), %%zmm24\n\t" \
  "vmovdqa64 (%[b1]), %%zmm25\n\t" \
  LMX_DP(INSN, 0, a0, 24, 0) LMX_DP(INSN, 0, a0, 25, 1) \
  LMX_DP(INSN, 4, a0, 24, 2) LMX_DP(INSN, 4, a0, 25, 3) \
  LMX_DP(INSN, 8, a0, 24, 4) LMX_DP(INSN, 8, a0, 25, 5) \
  LMX_DP(INSN, 12, a0, 24, 6) LMX_DP(INSN, 12, a0, 25, 7) \
  LMX_DP(INSN, 16, a0, 24, 8) LMX_DP(INSN, 16, a0, 25, 9) \
  LMX_DP(INSN, 20, a0, 24, 10) LMX_DP(INSN, 20, a0, 25, 11) \
  LMX_DP(INSN, 0, a1, 24, 12) LMX_DP(INSN, 0, a1, 25, 13) \
  LMX_DP(INSN, 4, a1, 24, 14) LMX_DP(INSN, 4, a1, 25, 15) \
  LMX_DP(INSN, 8, a1, 24, 16) LMX_DP(INSN, 8, a1, 25, 17) \
  LMX_DP(INSN, 12, a1, 24, 18) LMX_DP(INSN, 12, a1, 25, 19) \
  LMX_DP(INSN, 16, a1, 24, 20) LMX_DP(INSN, 16, a1, 25, 21) \
  LMX_DP(INSN, 20, a1, 24, 22) LMX_DP(INSN, 20, a1, 25, 23) \
  "add $24, %[a0]\n\t" \
  "add $24, %[a1]\n\t" \
  "add $64, %[b0]\n\t" \
  "add $64, %[b1]\n\t" \
  "dec %[n]\n\t" \
  "jnz 1b\n\t" \
  "vmovdqa64 %%zmm0, 0(%[out])\n\t" \
  "vmovdqa64 %%zmm1, 64(%[out])\n\t" \
  "vmovdqa64 %%zmm2, 128(%[out])\n\t" \
  "vmovdqa64 %%zmm3, 192(%[out])\n\t" \
  "vmovdqa64 %%zmm4, 256(%[out])\n\t" \
  "vmovdqa64 %%zmm5, 320(%[out])\n\t" \
  "vmovdqa64 %%zmm6, 384(%[out])\n\t" \
  "vmovdqa64 %%zmm7, 448(%[out])\n\t" \
  "vmovdqa64 %%zmm8, 512(%[out])\n\t" \
  "vmovdqa64 %%zmm9, 576(%[out])\n\t" \
  "vmovdqa64 %%zmm10, 640(%[out])\n\t" \
  "vmovdqa64 %%zmm11, 704(%[out])\n\t" \
  "vmovdqa64 %%zmm12, 768(%[out])\n\t" \
  "vmovdqa64 %%zmm13, 832(%[out])\n\t" \
  "vmovdqa64 %%zmm14, 896(%[out])\n\t" \
  "vmovdqa64 %%zmm15, 960(%[out])\n\t" \
  "vmovdqa64 %%zmm16, 1024(%[out])\n\t" \
  "vmovdqa64 %%zmm17, 1088(%[out])\n\t" \
  "vmovdqa64 %%zmm18, 1152(%[out])\n\t" \
  "vmovdqa64 %%zmm19, 1216(%[out])\n\t" \
  "vmovdqa64 %%zmm20, 1280(%[out])\n\t" \
  "vmovdqa64 %%zmm21, 1344(%[out])\n\t" \
  "vmovdqa64 %%zmm22, 1408(%[out])\n\t" \
  "vmovdqa64 %%zmm23, 1472(%[out])\n\t" \
  : [a0] "+r"(a0), [a1] "+r"(a1), [b0] "+r"(b0), [b1] "+r"(b1), [n] "+r"(steps) \
  : [out] "r"(&acc[0][0]) \
  : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25")
