// Prefill GEMMs (m = 512) on every SIMD tier this CPU has, interleaved in one process and
// timed in thread CPU time on one thread: on a shared machine, where wall-clock rates drift
// 2-5x with the neighbours' builds, CPU time per call still compares tiers (a core's share
// of a busy sibling thread moves it less than the scheduler does).
// Usage: gemm_tier_ab [rounds [tier]]  (prints one line per shape, weight type and tier per
// round; a tier name, e.g. avx512, runs that one only). Where the CPU has AVX512_VNNI, the
// vpdpwssd / vpdpbusd loops are timed the same way first, and the integer-x rows print their
// fraction of them (int16 x: vpdpwssd, int8 x on the AVX-512 tier: vpdpbusd).
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "bench/kernel_report.h"
#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/matmul.h"
#include "lmx/backend/cpu/quantized.h"
#include "lmx/base/thread_pool.h"
#include "lmx/core/half.h"

namespace {

using namespace lmx;
using namespace lmx::cpu;

double thread_seconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

struct Shape {
  const char* name;
  int64_t n, k;
};

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 2;
  const std::string only = argc > 2 ? argv[2] : "";
  const int64_t m = 512;
  ThreadPool pool(1);
  // Every x86 tier the CPU has, its bf16 GEMM on f32 x (LMX_BF16_DOT=0); the AVX-512 tier
  // also with the bf16 dot products ("avx512-bf16dot": vdpbf16ps, the default) where the
  // CPU has them.
  struct Path {
    std::string name;
    CpuFeatures features;
  };
  std::vector<Path> tiers;
  for (CpuTier t : {CpuTier::avx2, CpuTier::avx_vnni, CpuTier::avx512}) {
    CpuFeatures f = detected_cpu_features().limited_to(t);
    f.bf16_dot = false;
    if (f.tier() != t) continue;
    tiers.push_back({cpu_tier_name(t), f});
    CpuFeatures dot = f;
    dot.bf16_dot = true;
    if (dot.use_avx512_bf16() && !f.use_avx512_bf16()) tiers.push_back({"avx512-bf16dot", dot});
  }
  // The VNNI peaks in thread CPU time: 12 chains x 12 instructions, 64 / 128 ops each.
  double peak16 = 0, peak8 = 0;
  if (detected_cpu_features().avx512_vnni) {
    const int64_t iters = 20'000'000;
    for (int rep = 0; rep < 3; ++rep)
      for (bool bytes : {false, true}) {
        const double t0 = thread_seconds();
        lmx::bench::vnni_loop(iters, bytes);
        const double gops = iters * 12.0 * (bytes ? 128 : 64) / (thread_seconds() - t0) / 1e9;
        double& peak = bytes ? peak8 : peak16;
        peak = std::max(peak, gops);
      }
    std::printf("VNNI peak (one thread, best of 3): vpdpwssd %.0f GOP/s, vpdpbusd %.0f GOP/s\n",
                peak16, peak8);
  }
  const Shape shapes[] = {{"llama1b ffn_up", 8192, 2048}, {"qwen0.5b ffn_up", 4864, 896}};
  std::printf("one thread, m = %ld, thread CPU time per call; GOP/s = 2 m n k / time\n",
              static_cast<long>(m));
  for (const Shape& s : shapes) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(m * s.k)), y(static_cast<size_t>(m * s.n));
    std::vector<float> w(static_cast<size_t>(s.n * s.k));
    for (auto& e : x) e = d(rng);
    for (auto& e : w) e = 0.1f * d(rng);
    std::vector<uint16_t> wh(w.size());
    for (size_t i = 0; i < w.size(); ++i) wh[i] = f32_to_bf16(w[i]);
    struct Kernel {
      std::string name;
      PackedQuantWeight packed;
      ActivationPrecision prec = ActivationPrecision::int16;
    };
    std::vector<Kernel> kernels;
    for (int bits : {4, 8}) {
      std::vector<uint32_t> q(static_cast<size_t>(s.n * s.k * bits / 32));
      std::vector<uint16_t> sc(static_cast<size_t>(s.n * s.k / 64)), bi(sc.size());
      quantize_affine(w.data(), s.n, s.k, bits, 64, q.data(), sc.data(), bi.data(), Dtype::bf16);
      const QuantView v{q.data(), sc.data(), bi.data(), Dtype::bf16, s.n, s.k, bits, 64};
      for (ActivationPrecision p : {ActivationPrecision::int16, ActivationPrecision::int8}) {
        char name[32];
        std::snprintf(name, sizeof name, "q%dg64 %s", bits,
                      p == ActivationPrecision::int16 ? "int16-x" : "int8-x");
        kernels.push_back({name, pack_quantized(v), p});
      }
    }
    kernels.push_back({"bf16", PackedQuantWeight{}, ActivationPrecision::f32});
    for (int r = 0; r < rounds; ++r)
      for (const Kernel& kn : kernels)
        for (const Path& t : tiers) {
          // The bf16-dot variant differs from avx512 only in the bf16 GEMM.
          if (t.name == "avx512-bf16dot" && !kn.packed.empty()) continue;
          if (!only.empty() && t.name != only) continue;
          set_cpu_features_for_testing(t.features);
          auto call = [&] {
            if (kn.packed.empty()) {
              const DenseWeightView v{wh.data(), Dtype::bf16, s.n, s.k, s.k};
              matmul_nt(x.data(), s.k, v, y.data(), s.n, m, &pool);
            } else {
              QuantMatmulOptions opt;
              opt.activations = kn.prec;
              quantized_matmul(x.data(), s.k, kn.packed, y.data(), s.n, m, opt, &pool);
            }
          };
          call();
          int calls = 0;
          const double t0 = thread_seconds();
          double sec = 0;
          do {
            call();
            ++calls;
            sec = thread_seconds() - t0;
          } while (sec < 0.5);
          const double per = sec / calls;
          const double gops = 2.0 * m * s.n * s.k / per / 1e9;
          // The instruction the tier runs for this row (avx2 / avx_vnni: no VNNI peak).
          const double peak = kn.packed.empty() || t.name != "avx512" ? 0
                              : kn.prec == ActivationPrecision::int8 ? peak8
                                                                    : peak16;
          std::printf("%-16s [%ldx%ld] %-14s %-10s %8.2f ms %7.1f GOP/s", s.name,
                      static_cast<long>(s.n), static_cast<long>(s.k), kn.name.c_str(),
                      t.name.c_str(), per * 1e3, gops);
          if (peak > 0) std::printf("  %4.1f%% of VNNI peak", 100 * gops / peak);
          std::printf("\n");
        }
  }
  return 0;
}
