// On / off switches read from the environment at each call (a getenv is cheap next to the
// work each one gates, and tests can flip them): "0" is off, any other non-empty value
// on, unset or empty keeps the default. Plain C++17 (the CUDA sources include it too).
#pragma once

#include <cstdlib>

namespace lmx {

inline bool env_switch(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  return !(v[0] == '0' && v[1] == '\0');
}

// The CUDA paths of issue 16, session 12: on by default since session 14's H100 run verified
// them (docs/performance.md, "CUDA, session 14"); "0" brings back the earlier path, for
// comparisons and as a way out. Read by lmx/nn and lmx/backend/cuda alike.
// Prompts of bf16 / f16-weight models: K / V in bf16 and the tensor-core attention.
inline bool cuda_flash_attention() { return env_switch("LMX_CUDA_FLASH_ATTENTION", true); }
// Prompts: projections of one x share one bf16 rounding of x (q / k / v, gate / up), the
// MLP in one pass (no row chunks), 16-byte-load rounding of x for the GEMMs.
inline bool cuda_prefill_fused() { return env_switch("LMX_CUDA_PREFILL_FUSED", true); }
// Element-wise copies / binaries and RoPE with 32-bit index arithmetic, contiguous f32
// binaries without any (the same values).
inline bool cuda_fast_elementwise() { return env_switch("LMX_CUDA_FAST_ELEMENTWISE", true); }

// The CUDA decode and quantized paths of session 12.
// Batch-1 decode steps replayed from CUDA graphs (lmx/generate/decode_graph.*).
inline bool cuda_graphs() { return env_switch("LMX_CUDA_GRAPHS", true); }
// One-query attention on decode_attention.cu; implied by graphs (eager steps then give the
// bits of replayed ones).
inline bool cuda_decode_attention() { return env_switch("LMX_CUDA_DECODE_ATTENTION", cuda_graphs()); }
// q / k rotated and k / v appended in one op (ops::rope_append) on a device that has it.
inline bool fused_decode() { return env_switch("LMX_FUSED_DECODE", true); }
// One row of x against MLX affine 4 / 8-bit weights on the tensor-core matvec.
inline bool cuda_quant_mma() { return env_switch("LMX_CUDA_QUANT_MMA", true); }
// Quantized prefill (bf16 scales, reduced activation precision): W dequantized to bf16 and
// the dense bf16 cuBLAS GEMM instead of f32 dequantize + SGEMM.
inline bool cuda_quant_bf16_prefill() { return env_switch("LMX_CUDA_QUANT_BF16_PREFILL", true); }
// The KV cache of a model with bf16 / f16 weights (or bf16 quantization scales) on a GPU
// kept in bf16, as transformers' and llama.cpp's (f16) caches are: half the cache's memory.
// Off by default: measured slower on an H100 (session 16, docs/performance.md: `-b 32` bf16
// 6,117 vs 6,681 tok/s; the decode attention reads bf16 tiles no faster than f32 ones and
// each layer adds two conversions).
inline bool cuda_kv_bf16() { return env_switch("LMX_CUDA_KV_BF16", false); }
// 9..64 rows of x (a batched decode step) against MLX affine 4 / 8-bit weights with bf16
// scales at reduced activation precision: the few-row tensor-core GEMM (quant_gemm_few.cu)
// instead of dequantizing W to bf16 for cuBLAS every call (session 16).
inline bool cuda_quant_few_rows() { return env_switch("LMX_CUDA_QUANT_FEW_ROWS", true); }
// The same kernel for 2..8 rows (a small batch's decode step; one row keeps the exact
// tensor-core matvec) instead of the CUDA-core multi-row matvec, which took ~165 us a launch
// at 8 rows in a served 4-bit decode step on an H100 (session 17's profile). On since session
// 18's H100 run: `lmx bench -b 2 / 4 / 8` 4-bit 409 / 478 / 548 -> 852 / 1,646 / 3,129 tok/s,
// 8-bit -b 8 922 -> 2,815 (docs/performance.md, "CUDA, session 18").
inline bool cuda_quant_few_rows_small() { return env_switch("LMX_CUDA_QUANT_FEW_ROWS_SMALL", true); }
// Decode-path kernels launched to overlap the previous kernel's end (programmatic dependent
// launch, compute capability 9.0+; lmx/backend/cuda/dependent_launch.cuh). Measured on an H100
// (session 17): batch-1 decode bf16 +2-3%, 4-bit / 8-bit +1-2%.
inline bool cuda_dependent_launch() { return env_switch("LMX_CUDA_PDL", true); }
// Greedy rows whose logits live on a device (temperature 0, no penalties, bias, logprobs or
// logits processors): the argmax runs there and only the chosen ids come back to the host,
// not [rows, vocab] f32 logits (lmx/generate/device_greedy.h).
inline bool device_greedy() { return env_switch("LMX_DEVICE_GREEDY", true); }
// Host-to-device copies of up to 256 KiB staged through page-locked memory and queued without
// waiting for the device (lmx/backend/cuda/host_staging.h); off: each such copy waits for the
// stream. On since session 19's H100 run: backend_cuda_test the same with it on and off, a served
// 4-bit decode (`serve_gpu_profile.sh`) 1 stream 497 -> 570 tok/s, 8 streams 532 -> 545, 32 2,073 -> 2,096.
inline bool cuda_staged_copies() { return env_switch("LMX_CUDA_STAGED_COPIES", true); }
// f32 GEMMs with one side of at most 16 (low-rank adapters' products in training) on
// thin_gemm.cu instead of cuBLAS SGEMM / the own tiled kernel, whose few tiles leave most of
// the GPU idle for such shapes. On since session 20's H100 run: with the short-row reduce,
// LoRA on the Qwen2.5-0.5B shape 14,224 -> 17,698 tokens/s (docs/performance.md).
inline bool cuda_thin_gemm() { return env_switch("LMX_CUDA_THIN_GEMM", true); }
// Row reductions of at most 32 values a thread per row in the CPU's order (scan_kernels.cu)
// instead of a 256-thread block per row (training's sums over grouped query heads).
inline bool cuda_short_row_reduce() { return env_switch("LMX_CUDA_SHORT_ROW_REDUCE", true); }
// The argmax of f32 rows of 4096 values or more (a decode step's logits on the device) in a
// 1024-thread block with eight loads in flight per thread (scan_kernels.cu), instead of the
// general row reduction's 256 threads and a dependent double compare per value. On since
// session 25's H100 run (85 -> 30 us a step; batch-1 decode with the next switch, two rounds:
// bf16 662 / 658 -> 675 / 683, 4-bit 824 / 823 -> 848 / 854, 8-bit 686 / 693 -> 711 / 713 tok/s).
inline bool cuda_long_row_argmax() { return env_switch("LMX_CUDA_LONG_ROW_ARGMAX", true); }
// RMSNorm rows of at most 8 values a thread held in registers, all loads in flight at once
// (nn_kernels.cu; the same bits as the looping kernel). On since session 25 (above).
// The norm before a decode step's linears (with its residual add) and the gated activation
// before the down projection run inside the linears' matvec (kernels::InputPrologue), not
// as launches of their own.
inline bool cuda_fused_input() { return env_switch("LMX_CUDA_FUSED_INPUT", false); }
inline bool cuda_norm_in_registers() { return env_switch("LMX_CUDA_NORM_REGISTERS", true); }
// mxfp4 / mxfp8 / nvfp4 weights on CUDA (generic kernels).
inline bool cuda_fp_quant() { return env_switch("LMX_CUDA_FP_QUANT", true); }

}  // namespace lmx
