// `lmx bench kernels`: measures this machine's read bandwidth and FMA peak, then the
// matmul-family kernels on real model shapes, and prints each kernel's time, achieved
// GB/s or GFLOP/s and its fraction of the roofline measured in the same run.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

namespace lmx::bench {

struct KernelReportOptions {
  int threads = 2;              // intra-op threads (the pool the kernels run on)
  int repeats = 5;              // timed samples per kernel; the median is reported
  double sample_seconds = 0.2;  // minimum duration of one timed sample
  bool quick = false;           // fewer shapes (for tests / CI smoke runs)
  std::string filter;           // only kernels whose name contains this
  bool tier_columns = true;     // also time every kernel on each lower SIMD tier the CPU has
};

// 12 independent chains of iters x 12 VNNI instructions (vpdpbusd when bytes, else
// vpdpwssd): the integer peak the quantized GEMMs are measured against. AVX512_VNNI only.
int vnni_loop(int64_t iters, bool bytes);

// Prints the report; returns 0 on success, non-zero if the CPU lacks what it measures.
int run_kernel_report(std::ostream& out, const KernelReportOptions& options);

}  // namespace lmx::bench
