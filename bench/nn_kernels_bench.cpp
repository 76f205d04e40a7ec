// Google Benchmark suite for the NN CPU kernels (rms_norm, rope, softmax, silu_mul,
// attention) on Llama-3.2-1B shapes: hidden 2048, 32 q heads, 8 kv heads, head_dim 64,
// vocab 128256. Every kernel runs on both paths (path:0 scalar reference, path:1
// AVX2), and after the usual table a summary prints, from the same run:
//   - AVX2 speed-up over the scalar reference for each case;
//   - for attention decode, the K+V bytes streamed per second against the read
//     bandwidth measured in this run (a streaming read of a 512 MiB buffer, 1 and 2
//     threads), i.e. the roofline a decode step cannot beat.
// The machines are shared and noisy: each case runs 5 repetitions and the summary
// uses the fastest (least disturbed) one; run with --benchmark_repetitions=1 for a
// quick look.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "lmx/backend/cpu/activations.h"
#include "lmx/backend/cpu/attention.h"
#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/norm.h"
#include "lmx/backend/cpu/rope.h"
#include "lmx/backend/cpu/softmax.h"
#include "lmx/base/thread_pool.h"
#include "lmx/core/half.h"

namespace {

using namespace lmx;

constexpr int64_t kHidden = 2048, kHeads = 32, kKvHeads = 8, kHeadDim = 64;

ThreadPool& pool(int threads) {
  static ThreadPool one(1), two(2);
  return threads == 1 ? one : two;
}

std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& e : v) e = d(rng);
  return v;
}

// Selects the scalar (0) or AVX2 (1) path for one benchmark.
class PathScope {
 public:
  PathScope(benchmark::State& st, int64_t path) : saved_(cpu::cpu_features()) {
    cpu::CpuFeatures f = saved_;
    if (path == 0)
      f.avx2 = f.fma = f.f16c = false;
    else if (!saved_.use_avx2())
      st.SkipWithError("no AVX2 on this CPU");
    cpu::set_cpu_features_for_testing(f);
  }
  ~PathScope() { cpu::set_cpu_features_for_testing(saved_); }

 private:
  cpu::CpuFeatures saved_;
};

// Streaming read of a buffer far larger than the caches: the memory roofline.
// args: threads
void BM_StreamRead(benchmark::State& st) {
  const int threads = static_cast<int>(st.range(0));
  const size_t n = (512u << 20) / sizeof(uint64_t);
  static std::vector<uint64_t> buf(n, 1);
  uint64_t total = 0;
  for (auto _ : st) {
    std::vector<uint64_t> part(static_cast<size_t>(threads), 0);
    pool(threads).run([&](int t, int nt) {
      const size_t b = n * t / nt, e = n * (t + 1) / nt;
      uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (size_t i = b; i + 4 <= e; i += 4) {
        a0 += buf[i];
        a1 += buf[i + 1];
        a2 += buf[i + 2];
        a3 += buf[i + 3];
      }
      part[static_cast<size_t>(t)] = a0 + a1 + a2 + a3;
    });
    for (uint64_t p : part) total += p;
  }
  benchmark::DoNotOptimize(total);
  st.SetBytesProcessed(static_cast<int64_t>(st.iterations()) * static_cast<int64_t>(n * 8));
}

// args: path, rows
void BM_RmsNorm(benchmark::State& st) {
  PathScope ps(st, st.range(0));
  const int64_t rows = st.range(1);
  const auto x = random_vec(static_cast<size_t>(rows * kHidden), 1);
  std::vector<uint16_t> w(kHidden);
  for (auto& e : w) e = f32_to_bf16(0.9f);
  std::vector<float> y(x.size());
  cpu::RmsNormOptions opt;
  opt.weight = {w.data(), Dtype::bf16};
  for (auto _ : st) {
    cpu::rms_norm(x.data(), rows, kHidden, kHidden, y.data(), kHidden, opt, pool(2));
    benchmark::DoNotOptimize(y.data());
  }
  st.SetBytesProcessed(st.iterations() * rows * kHidden * 8);
}

// q of one layer, in place on the [1, seq, heads, head_dim] projection output.
// args: path, seq
void BM_Rope(benchmark::State& st) {
  PathScope ps(st, st.range(0));
  const int64_t seq = st.range(1);
  auto x = random_vec(static_cast<size_t>(seq * kHeads * kHeadDim), 2);
  std::vector<float> inv_freq(kHeadDim / 2);
  for (int64_t i = 0; i < kHeadDim / 2; ++i) {
    inv_freq[i] = static_cast<float>(1.0 / std::pow(500000.0, 2.0 * i / kHeadDim));
  }
  cpu::RopeOptions o;
  o.heads = kHeads;
  o.seq = seq;
  o.head_dim = kHeadDim;
  const int64_t s[4] = {seq * kHeads * kHeadDim, kHeadDim, kHeads * kHeadDim, 1};
  std::memcpy(o.x_strides, s, sizeof s);
  std::memcpy(o.out_strides, s, sizeof s);
  o.rotary_dim = kHeadDim;
  o.inv_freq = inv_freq.data();
  o.offset = 1000;
  for (auto _ : st) {
    cpu::rope(x.data(), x.data(), o, pool(2));
    benchmark::DoNotOptimize(x.data());
  }
  st.SetItemsProcessed(st.iterations() * seq * kHeads * kHeadDim);
}

// args: path, rows, dim
void BM_Softmax(benchmark::State& st) {
  PathScope ps(st, st.range(0));
  const int64_t rows = st.range(1), dim = st.range(2);
  const auto x = random_vec(static_cast<size_t>(rows * dim), 3, -10.0f, 10.0f);
  std::vector<float> y(x.size());
  for (auto _ : st) {
    cpu::softmax(x.data(), rows, dim, dim, y.data(), dim, pool(2));
    benchmark::DoNotOptimize(y.data());
  }
  st.SetItemsProcessed(st.iterations() * rows * dim);
}

// args: path, n
void BM_SiluMul(benchmark::State& st) {
  PathScope ps(st, st.range(0));
  const int64_t n = st.range(1);
  const auto g = random_vec(static_cast<size_t>(n), 4, -5.0f, 5.0f);
  const auto u = random_vec(static_cast<size_t>(n), 5);
  std::vector<float> y(g.size());
  for (auto _ : st) {
    cpu::silu_mul(g.data(), u.data(), y.data(), n, pool(2));
    benchmark::DoNotOptimize(y.data());
  }
  st.SetItemsProcessed(st.iterations() * n);
}

// A KV cache of `capacity` positions holding `len` tokens, viewed as k/v.
struct KvCache {
  std::vector<float> f32;
  std::vector<uint16_t> half;
  Dtype dtype;
  int64_t capacity;
  KvCache(int64_t capacity_, Dtype dt, uint32_t seed) : dtype(dt), capacity(capacity_) {
    f32 = random_vec(static_cast<size_t>(kKvHeads * capacity * kHeadDim), seed);
    if (dt != Dtype::f32) {
      half.resize(f32.size());
      for (size_t i = 0; i < f32.size(); ++i) {
        half[i] = dt == Dtype::bf16 ? f32_to_bf16(f32[i]) : f32_to_f16(f32[i]);
      }
      f32 = {};
    }
  }
  const void* data() const {
    return dtype == Dtype::f32 ? static_cast<const void*>(f32.data()) : half.data();
  }
};

cpu::AttentionArgs attention_args(
    const float* q, const KvCache& k, const KvCache& v, float* out, int64_t q_len, int64_t kv_len) {
  cpu::AttentionArgs a;
  a.q_heads = kHeads;
  a.kv_heads = kKvHeads;
  a.q_len = q_len;
  a.kv_len = kv_len;
  a.head_dim = a.v_head_dim = kHeadDim;
  a.q = q;
  const int64_t qs[4] = {q_len * kHeads * kHeadDim, kHeadDim, kHeads * kHeadDim, 1};
  std::memcpy(a.q_strides, qs, sizeof qs);
  std::memcpy(a.out_strides, qs, sizeof qs);
  const int64_t ks[4] = {kKvHeads * k.capacity * kHeadDim, k.capacity * kHeadDim, kHeadDim, 1};
  a.k = k.data();
  a.v = v.data();
  std::memcpy(a.k_strides, ks, sizeof ks);
  std::memcpy(a.v_strides, ks, sizeof ks);
  a.kv_dtype = k.dtype;
  a.out = out;
  return a;
}

// Decode step (one query per head) against `ctx` cached tokens of a cache of 8192.
// args: path, ctx, kv dtype (0 f32, 1 f16, 2 bf16), threads
void BM_AttentionDecode(benchmark::State& st) {
  PathScope ps(st, st.range(0));
  const int64_t ctx = st.range(1);
  const Dtype dt = st.range(2) == 0 ? Dtype::f32 : st.range(2) == 1 ? Dtype::f16 : Dtype::bf16;
  const int threads = static_cast<int>(st.range(3));
  static const KvCache k16(8192, Dtype::f16, 6), v16(8192, Dtype::f16, 7);
  static const KvCache k32(8192, Dtype::f32, 6), v32(8192, Dtype::f32, 7);
  static const KvCache kb16(8192, Dtype::bf16, 6), vb16(8192, Dtype::bf16, 7);
  const KvCache& k = dt == Dtype::f16 ? k16 : dt == Dtype::f32 ? k32 : kb16;
  const KvCache& v = dt == Dtype::f16 ? v16 : dt == Dtype::f32 ? v32 : vb16;
  const auto q = random_vec(static_cast<size_t>(kHeads * kHeadDim), 8);
  std::vector<float> out(q.size());
  const auto a = attention_args(q.data(), k, v, out.data(), 1, ctx);
  cpu::AttentionOptions o;
  o.scale = 0.125f;
  o.causal = true;
  o.q_offset = ctx - 1;
  for (auto _ : st) {
    cpu::scaled_dot_product_attention(a, o, pool(threads));
    benchmark::DoNotOptimize(out.data());
  }
  st.SetBytesProcessed(st.iterations() * 2 * kKvHeads * ctx * kHeadDim *
                       static_cast<int64_t>(dtype_size(dt)));
}

// Causal prefill of `len` tokens (f16 KV cache). FLOP count: 4 * d per visible
// (query, key) pair, len (len + 1) / 2 pairs per head.
// args: path, len, threads
void BM_AttentionPrefill(benchmark::State& st) {
  PathScope ps(st, st.range(0));
  const int64_t len = st.range(1);
  const int threads = static_cast<int>(st.range(2));
  const KvCache k(len, Dtype::f16, 9), v(len, Dtype::f16, 10);
  const auto q = random_vec(static_cast<size_t>(len * kHeads * kHeadDim), 11);
  std::vector<float> out(q.size());
  const auto a = attention_args(q.data(), k, v, out.data(), len, len);
  cpu::AttentionOptions o;
  o.scale = 0.125f;
  o.causal = true;
  for (auto _ : st) {
    cpu::scaled_dot_product_attention(a, o, pool(threads));
    benchmark::DoNotOptimize(out.data());
  }
  const double flops = 4.0 * kHeadDim * kHeads * (len * (len + 1) / 2);
  st.counters["FLOP/s"] =
      benchmark::Counter(flops * static_cast<double>(st.iterations()), benchmark::Counter::kIsRate);
}

void paths(benchmark::internal::Benchmark* b, const std::vector<std::vector<int64_t>>& rest) {
  for (int64_t path : {0, 1}) {
    for (const auto& r : rest) {
      std::vector<int64_t> args = {path};
      args.insert(args.end(), r.begin(), r.end());
      b->Args(args);
    }
  }
}

void rms_norm_args(benchmark::internal::Benchmark* b) { paths(b, {{1}, {512}}); }
void rope_args(benchmark::internal::Benchmark* b) { paths(b, {{1}, {512}}); }
void softmax_args(benchmark::internal::Benchmark* b) {
  paths(b, {{32, 512}, {32, 2048}, {1, 128256}});
}
void silu_mul_args(benchmark::internal::Benchmark* b) { paths(b, {{8192}, {512 * 8192}}); }
void decode_args(benchmark::internal::Benchmark* b) {
  paths(b, {{512, 1, 2},
            {2048, 1, 2},
            {8192, 1, 2},
            {8192, 0, 2},
            {8192, 2, 2},
            {512, 1, 1},
            {2048, 1, 1},
            {8192, 1, 1}});
}
void prefill_args(benchmark::internal::Benchmark* b) {
  paths(b, {{512, 2}});
  b->Args({1, 512, 1});  // AVX2 alone on one core: the kernel's own throughput
}

BENCHMARK(BM_StreamRead)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_RmsNorm)->ArgNames({"path", "rows"})->Apply(rms_norm_args)->UseRealTime();
BENCHMARK(BM_Rope)->ArgNames({"path", "seq"})->Apply(rope_args)->UseRealTime();
BENCHMARK(BM_Softmax)->ArgNames({"path", "rows", "dim"})->Apply(softmax_args)->UseRealTime();
BENCHMARK(BM_SiluMul)->ArgNames({"path", "n"})->Apply(silu_mul_args)->UseRealTime();
BENCHMARK(BM_AttentionDecode)
    ->ArgNames({"path", "ctx", "kv", "threads"})
    ->Apply(decode_args)
    ->UseRealTime();
BENCHMARK(BM_AttentionPrefill)
    ->ArgNames({"path", "len", "threads"})
    ->Apply(prefill_args)
    ->UseRealTime()
    ->MinTime(1.0);

// Console output plus the summary of ratios measured in this run (fastest repetition).
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.error_occurred || r.run_type != Run::RT_Iteration) continue;
      const double seconds = r.GetAdjustedRealTime() / 1e9;     // real time, ns by default
      const double cpu_seconds = r.GetAdjustedCPUTime() / 1e9;  // calling thread only
      double bytes_per_iteration = 0;
      auto it = r.counters.find("bytes_per_second");
      if (it != r.counters.end()) bytes_per_iteration = it->second * seconds;
      Entry& e = entries_[r.run_name.str()];
      if (e.seconds == 0 || seconds < e.seconds) e = {seconds, cpu_seconds, bytes_per_iteration};
    }
    ConsoleReporter::ReportRuns(runs);
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    // On a loaded machine real time also counts the time the threads waited for a
    // core; the calling thread's CPU time shows what the kernel itself took.
    std::printf(
        "\nSummary (fastest repetition of this run): AVX2 real time, calling thread's CPU "
        "time, real-time speed-up over the scalar reference\n");
    for (const auto& [name, e] : entries_) {
      const auto pos = name.find("path:1");
      if (pos == std::string::npos) continue;
      std::string scalar = name;
      scalar.replace(pos, 6, "path:0");
      auto it = entries_.find(scalar);
      if (it == entries_.end()) continue;
      std::printf("  %-56s %10.1f us %10.1f us  x%.1f\n", name.c_str(), e.seconds * 1e6,
                  e.cpu_seconds * 1e6, it->second.seconds / e.seconds);
    }
    const double bw1 = rate("BM_StreamRead/threads:1"), bw2 = rate("BM_StreamRead/threads:2");
    std::printf("\nRead bandwidth: %.1f GB/s (1 thread), %.1f GB/s (2 threads)\n", bw1 / 1e9,
                bw2 / 1e9);
    if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {  // how shared the machine was
      char buf[128] = {};
      if (std::fgets(buf, sizeof buf, f)) std::printf("Load average at the end: %s", buf);
      std::fclose(f);
    }
    std::printf("Attention decode, K+V bytes / time vs that bandwidth (same thread count):\n");
    for (const auto& [name, e] : entries_) {
      if (name.rfind("BM_AttentionDecode", 0) != 0 || name.find("path:1") == std::string::npos) {
        continue;
      }
      const double bw = name.find("threads:1") != std::string::npos ? bw1 : bw2;
      const double r = e.bytes_per_iteration / e.seconds;
      std::printf("  %-56s %6.1f GB/s  %5.1f%% of read bandwidth\n", name.c_str(), r / 1e9,
                  bw > 0 ? 100.0 * r / bw : 0.0);
    }
  }

 private:
  struct Entry {
    double seconds = 0;
    double cpu_seconds = 0;
    double bytes_per_iteration = 0;
  };
  double rate(const std::string& prefix) const {
    for (const auto& [n, e] : entries_) {
      if (n.rfind(prefix, 0) == 0 && e.seconds > 0) return e.bytes_per_iteration / e.seconds;
    }
    return 0;
  }
  std::map<std::string, Entry> entries_;
};

}  // namespace

int main(int argc, char** argv) {
  // Five repetitions by default (the summary takes the fastest); flags override.
  std::vector<char*> args(argv, argv + argc);
  std::string reps = "--benchmark_repetitions=5";
  bool has_reps = false;
  for (int i = 1; i < argc; ++i)
    has_reps |= std::string(argv[i]).rfind("--benchmark_repetitions", 0) == 0;
  if (!has_reps) args.insert(args.begin() + 1, reps.data());
  argc = static_cast<int>(args.size());
  argv = args.data();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
