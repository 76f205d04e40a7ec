// Google Benchmark suite for the matmul-family CPU kernels on real model shapes
// (Llama-3.2-1B: hidden 2048, FFN 8192, vocab 128256; Qwen2.5-0.5B: 896 / 4864 / 151936),
// 2 threads. Counters: bytes/s of weights + scales + biases (decode), FLOP/s (prefill).
// `lmx bench kernels` (bench/kernel_report.cpp) prints the same kernels against the
// bandwidth and FMA roofline measured in the same run.
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "lmx/backend/cpu/matmul.h"
#include "lmx/backend/cpu/quantized.h"
#include "lmx/base/thread_pool.h"
#include "lmx/core/half.h"

namespace {

using namespace lmx;

ThreadPool& pool() {
  static ThreadPool p(2);
  return p;
}

std::vector<float> random_vec(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& e : v) e = d(rng);
  return v;
}

struct QuantData {
  std::vector<uint32_t> w;
  std::vector<uint16_t> scales, biases;
  cpu::QuantView view;
  QuantData(int64_t n, int64_t k, int bits, int group) {
    std::mt19937 rng(static_cast<uint32_t>(n + k + bits));
    w.resize(static_cast<size_t>(n * k * bits / 32));
    for (auto& e : w) e = rng();
    scales.resize(static_cast<size_t>(n * (k / group)));
    biases.resize(scales.size());
    for (size_t i = 0; i < scales.size(); ++i) {
      scales[i] = f32_to_bf16(0.01f);
      biases[i] = f32_to_bf16(-0.05f);
    }
    view = cpu::QuantView{w.data(), scales.data(), biases.data(), Dtype::bf16, n, k, bits, group};
  }
};

// args: n, k, bits, activations (0 f32, 1 int16, 2 int8)
void BM_QuantMatvec(benchmark::State& st) {
  const int64_t n = st.range(0), k = st.range(1);
  const int bits = static_cast<int>(st.range(2));
  QuantData qd(n, k, bits, 64);
  const auto packed = cpu::pack_quantized(qd.view);
  const auto x = random_vec(static_cast<size_t>(k), 1);
  std::vector<float> y(static_cast<size_t>(n));
  cpu::QuantMatmulOptions opt;
  opt.activations = st.range(3) == 0   ? cpu::ActivationPrecision::f32
                    : st.range(3) == 1 ? cpu::ActivationPrecision::int16
                                       : cpu::ActivationPrecision::int8;
  for (auto _ : st) {
    cpu::quantized_matmul(x.data(), k, packed, y.data(), n, 1, opt, &pool());
    benchmark::DoNotOptimize(y.data());
  }
  st.SetBytesProcessed(st.iterations() * (n * k * bits / 8 + 4 * n * (k / 64)));
}

// args: n, k
void BM_Bf16Matvec(benchmark::State& st) {
  const int64_t n = st.range(0), k = st.range(1);
  std::vector<uint16_t> w(static_cast<size_t>(n * k));
  std::mt19937 rng(3);
  for (auto& e : w) e = f32_to_bf16(static_cast<float>(rng() % 1000) * 1e-3f - 0.5f);
  const auto x = random_vec(static_cast<size_t>(k), 1);
  std::vector<float> y(static_cast<size_t>(n));
  const cpu::DenseWeightView v{w.data(), Dtype::bf16, n, k, k};
  for (auto _ : st) {
    cpu::matmul_nt(x.data(), k, v, y.data(), n, 1, &pool());
    benchmark::DoNotOptimize(y.data());
  }
  st.SetBytesProcessed(st.iterations() * n * k * 2);
}

// args: n, k, bits (0 = bf16 dense), m
void BM_Gemm(benchmark::State& st) {
  const int64_t n = st.range(0), k = st.range(1), m = st.range(3);
  const int bits = static_cast<int>(st.range(2));
  const auto x = random_vec(static_cast<size_t>(m * k), 2);
  std::vector<float> y(static_cast<size_t>(m * n));
  if (bits == 0) {
    std::vector<uint16_t> w(static_cast<size_t>(n * k), f32_to_bf16(0.01f));
    const cpu::DenseWeightView v{w.data(), Dtype::bf16, n, k, k};
    for (auto _ : st) cpu::matmul_nt(x.data(), k, v, y.data(), n, m, &pool());
  } else {
    QuantData qd(n, k, bits, 64);
    const auto packed = cpu::pack_quantized(qd.view);
    for (auto _ : st) cpu::quantized_matmul(x.data(), k, packed, y.data(), n, m, {}, &pool());
  }
  st.counters["FLOP/s"] =
      benchmark::Counter(2.0 * m * n * k * st.iterations(), benchmark::Counter::kIsRate);
}

// Decode shapes: Llama-3.2-1B ffn_up / ffn_down / lm_head, Qwen2.5-0.5B likewise.
void DecodeShapes(benchmark::internal::Benchmark* b, bool quant) {
  const int64_t shapes[][2] = {{8192, 2048}, {2048, 8192}, {128256, 2048},
                               {4864, 896},  {896, 4864},  {151936, 896}};
  for (const auto& s : shapes) {
    if (quant) {
      for (int bits : {4, 8})
        for (int act : {0, 1, 2}) b->Args({s[0], s[1], bits, act});
    } else {
      b->Args({s[0], s[1]});
    }
  }
  b->UseRealTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_QuantMatvec)
    ->Apply([](auto* b) { DecodeShapes(b, true); }) -> ArgNames({"n", "k", "bits", "act"});
BENCHMARK(BM_Bf16Matvec)->Apply([](auto* b) { DecodeShapes(b, false); }) -> ArgNames({"n", "k"});
BENCHMARK(BM_Gemm)
    ->ArgNames({"n", "k", "bits", "m"})
    ->Args({8192, 2048, 4, 512})
    ->Args({8192, 2048, 8, 512})
    ->Args({8192, 2048, 0, 512})
    ->Args({4864, 896, 4, 512})
    ->Args({4864, 896, 8, 512})
    ->Args({4864, 896, 0, 512})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
