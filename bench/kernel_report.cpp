#include "bench/kernel_report.h"

#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iomanip>
#include <memory>
#include <ostream>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/matmul.h"
#include "lmx/backend/cpu/quantized.h"
#include "lmx/base/thread_pool.h"
#include "lmx/core/half.h"

namespace lmx::bench {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Anonymous memory, optionally on transparent huge pages, touched so it is resident.
struct Buffer {
  uint8_t* p = nullptr;
  size_t size = 0;
  Buffer(size_t bytes, bool huge) : size(bytes) {
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    p = static_cast<uint8_t*>(m);
    madvise(p, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    for (size_t i = 0; i < bytes; i += 4096) p[i] = static_cast<uint8_t>(i >> 12);
  }
  ~Buffer() { munmap(p, size); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

// Reads [p, p + bytes) as four interleaved sequential streams (one per quarter), the
// access pattern of a 4-row matvec; a single stream leaves bandwidth unused on one core.
__attribute__((target("avx2"))) uint64_t read_avx2(const uint8_t* p, size_t bytes) {
  const size_t quarter = bytes / 4 / 64 * 64;
  const uint8_t* s0 = p;
  const uint8_t* s1 = p + quarter;
  const uint8_t* s2 = p + 2 * quarter;
  const uint8_t* s3 = p + 3 * quarter;
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 64 <= quarter; i += 64) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(s0 + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(s1 + i)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(s2 + i)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(s3 + i)));
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(s0 + i + 32)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(s1 + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(s2 + i + 32)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(s3 + i + 32)));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  alignas(32) uint64_t t[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(t), s);
  return t[0] + t[1] + t[2] + t[3];
}

uint64_t read_scalar(const uint8_t* p, size_t bytes) {
  uint64_t s = 0;
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    s += v;
  }
  return s;
}

std::atomic<uint64_t> g_sink{0};

// Streaming read of a buffer far larger than the caches; GB/s samples (one per pass).
std::vector<double> measure_read(ThreadPool& pool,
                                 int threads,
                                 const Buffer& buf,
                                 int passes) {
  std::vector<double> out;
  const bool avx2 = cpu::cpu_features().use_avx2();
  for (int rep = 0; rep < passes + 1; ++rep) {
    const auto t0 = Clock::now();
    pool.run(
        [&](int t, int nt) {
          const size_t chunk = buf.size / static_cast<size_t>(nt) / 4096 * 4096;
          const uint8_t* p = buf.p + chunk * static_cast<size_t>(t);
          g_sink.fetch_add(avx2 ? read_avx2(p, chunk) : read_scalar(p, chunk),
                           std::memory_order_relaxed);
        },
        threads);
    const double s = seconds_since(t0);
    if (rep > 0)
      out.push_back(static_cast<double>(buf.size / static_cast<size_t>(threads) / 4096 * 4096 *
                                        static_cast<size_t>(threads)) /
                    s / 1e9);
  }
  return out;
}

// FMA throughput loop: 12 independent accumulator chains per thread.
__attribute__((target("avx2,fma"))) float fma_loop(int64_t iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i) * 1e-3f);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float t[8];
  _mm256_store_ps(t, s);
  return t[0];
}

// The same with 16 lanes (AVX-512: Zen 5 and Intel server cores run two 512-bit FMAs per
// cycle, Zen 4 one).
__attribute__((target("avx512f"))) float fma_loop512(int64_t iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i) * 1e-3f);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  alignas(64) float t[16];  // (not _mm512_reduce_add_ps: g++ 12 warns inside it)
  _mm512_store_ps(t, s);
  return t[0];
}

// Best of 5 runs of a 12-chain loop on every thread: ops counted per inner instruction.
template <class Loop>
double measure_loop_gops(ThreadPool& pool, int threads, double ops_per_instr, const Loop& loop) {
  const int64_t iters = 20'000'000;
  std::vector<double> samples;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = Clock::now();
    pool.run(
        [&](int, int) {
          g_sink.fetch_add(static_cast<uint64_t>(loop(iters)), std::memory_order_relaxed);
        },
        threads);
    samples.push_back(static_cast<double>(iters) * 12 * ops_per_instr * threads /
                      seconds_since(t0) / 1e9);
  }
  return *std::max_element(samples.begin(), samples.end());
}

double measure_fma_gflops(ThreadPool& pool, int threads) {
  const int64_t iters = 20'000'000;
  std::vector<double> samples;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = Clock::now();
    pool.run(
        [&](int, int) {
          g_sink.fetch_add(static_cast<uint64_t>(fma_loop(iters)), std::memory_order_relaxed);
        },
        threads);
    samples.push_back(static_cast<double>(iters) * 12 * 16 * threads / seconds_since(t0) / 1e9);
  }
  return *std::max_element(samples.begin(), samples.end());
}

double cpu_mhz() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("cpu MHz", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return std::atof(line.c_str() + colon + 1);
    }
  }
  return 0.0;
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown CPU";
}

struct Timing {
  double median = 0, best = 0;  // seconds per call
  double paired = 0;            // median over samples of rate / roofline rate measured just before
  std::vector<double> tier_median;  // seconds per call on each of g_tiers (tier columns)
};

// Tier columns: the SIMD tiers (up to the active one) this CPU has, each kernel timed on
// each; the active tier's column is the main timing.
std::vector<cpu::CpuTier> g_tiers;

// Times fn (one call = one unit of work) in o.repeats samples of at least
// o.sample_seconds each. Before each sample, roof() measures the roofline rate (read
// bandwidth or FMA throughput) right now, so each sample's fraction of the roofline is
// taken under the same load: the machines are shared and their speed drifts.
Timing time_call(const std::function<void(int)>& fn,
                 const KernelReportOptions& o,
                 const std::function<double()>& roof,
                 double work) {
  fn(0);  // warm-up (workspaces, page faults)
  std::vector<double> samples, ratios;
  int iter = 1;
  for (int rep = 0; rep < o.repeats; ++rep) {
    const double roof_rate = roof();
    int calls = 0;
    const auto t0 = Clock::now();
    double s = 0;
    do {
      fn(iter++);
      ++calls;
      s = seconds_since(t0);
    } while (s < o.sample_seconds);
    samples.push_back(s / calls);
    ratios.push_back(work / (s / calls) / roof_rate);
  }
  Timing t{median(samples), *std::min_element(samples.begin(), samples.end()), median(ratios), {}};
  const cpu::CpuFeatures active = cpu::cpu_features();
  for (cpu::CpuTier tier : g_tiers) {
    if (tier == active.tier()) {
      t.tier_median.push_back(t.median);
      continue;
    }
    cpu::set_cpu_features_for_testing(active.limited_to(tier));
    fn(0);
    std::vector<double> ts;
    for (int rep = 0; rep < std::max(1, (o.repeats + 1) / 2); ++rep) {
      int calls = 0;
      const auto t0 = Clock::now();
      double s = 0;
      do {
        fn(iter++);
        ++calls;
        s = seconds_since(t0);
      } while (s < o.sample_seconds);
      ts.push_back(s / calls);
    }
    cpu::set_cpu_features_for_testing(active);
    t.tier_median.push_back(median(ts));
  }
  return t;
}

struct Shape {
  const char* model;
  const char* name;
  int64_t n, k;
};

// Decode weights are rotated over enough copies that the working set exceeds the caches
// (as in a real forward pass, where every layer's weights come from memory).
constexpr size_t kWorkingSet = size_t{320} << 20;

std::vector<float> random_vec(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& e : v) e = d(rng);
  return v;
}

// A random MLX-layout quantized weight (random codes, bf16 scales and biases).
struct QuantData {
  std::vector<uint32_t> w;
  std::vector<uint16_t> scales, biases;
  cpu::QuantView view;
  QuantData(int64_t n, int64_t k, int bits, int group) {
    std::mt19937 rng(static_cast<uint32_t>(n * 31 + k + bits));
    w.resize(static_cast<size_t>(n * k * bits / 32));
    for (auto& e : w) e = rng();
    std::uniform_real_distribution<float> us(0.001f, 0.02f), ub(-0.1f, 0.1f);
    scales.resize(static_cast<size_t>(n * (k / group)));
    biases.resize(scales.size());
    for (size_t i = 0; i < scales.size(); ++i) {
      scales[i] = f32_to_bf16(us(rng));
      biases[i] = f32_to_bf16(ub(rng));
    }
    view = cpu::QuantView{w.data(), scales.data(), biases.data(), Dtype::bf16, n, k, bits, group};
  }
};

struct Row {
  std::string kernel, shape;
  Timing t;
  double bytes = 0, flops = 0;
  bool compute_bound = false;  // GEMM: roofline is the FMA peak, else read bandwidth
};

class Report {
 public:
  Report(std::ostream& out,
         const KernelReportOptions& o,
         double bw_med,
         double peak,
         double int16_peak)
      : out_(out), o_(o), bw_med_(bw_med), peak_(peak), int16_peak_(int16_peak) {}
  void header() {
    out_ << std::left << std::setw(24) << "kernel" << std::setw(36) << "shape [n x k], m"
         << std::right << std::setw(11) << "median us" << std::setw(10) << "best us" << std::setw(8)
         << "GB/s" << std::setw(9) << "GFLOP/s" << std::setw(7) << "roof" << std::setw(8) << "%roof"
         << std::setw(10) << "%paired";
    // Per tier: GB/s (decode rows) or GFLOP/s (GEMM rows), then the active tier over avx2;
    // %vnni: an int16-x GEMM's rate over the vpdpwssd loop's.
    for (cpu::CpuTier t : g_tiers) out_ << std::setw(10) << cpu::cpu_tier_name(t);
    if (g_tiers.size() > 1) out_ << std::setw(9) << "vs avx2";
    if (int16_peak_ > 0) out_ << std::setw(7) << "%vnni";
    out_ << "\n";
  }
  // GB/s and GFLOP/s from the median time. %roof: that rate over the roofline measured at
  // the start (median read bandwidth, or the FMA peak); %paired: the median of each
  // sample's rate over the roofline re-measured just before it (the read probe, or the FMA
  // loop's own rate: the fraction of what the cores deliver at that moment).
  void row(const Row& r) {
    std::ostringstream line;
    line << std::left << std::setw(24) << r.kernel << std::setw(36) << r.shape << std::right
         << std::fixed << std::setprecision(1) << std::setw(11) << r.t.median * 1e6 << std::setw(10)
         << r.t.best * 1e6;
    const double gbs = r.bytes / r.t.median / 1e9, gf = r.flops / r.t.median / 1e9;
    line << std::setw(8) << gbs << std::setw(9) << gf << std::setw(7)
         << (r.compute_bound ? "FMA" : "BW");
    const double frac = r.compute_bound ? gf / peak_ : gbs / bw_med_;
    line << std::setw(7) << 100.0 * frac << "%" << std::setw(9) << 100.0 * r.t.paired << "%";
    const double work = r.compute_bound ? r.flops : r.bytes;
    for (double t : r.t.tier_median) line << std::setw(10) << work / t / 1e9;
    if (r.t.tier_median.size() > 1) line << std::setw(8) << r.t.tier_median[0] / r.t.median << "x";
    if (int16_peak_ > 0 && r.compute_bound && r.kernel.find("int16-x") != std::string::npos)
      line << std::setw(6) << 100.0 * gf / int16_peak_ << "%";
    out_ << line.str() << std::endl;
  }
  bool wanted(const std::string& name) const {
    return o_.filter.empty() || name.find(o_.filter) != std::string::npos;
  }

 private:
  std::ostream& out_;
  const KernelReportOptions& o_;
  double bw_med_, peak_, int16_peak_;
};

std::string shape_str(const Shape& s, int64_t m) {
  std::ostringstream o;
  o << s.model << " " << s.name << " [" << s.n << "x" << s.k << "], " << m;
  return o.str();
}

}  // namespace

// VNNI throughput loops, 12 independent chains: vpdpwssd (32 int16 multiply-adds per
// instruction, the int16-activation GEMM's) and vpdpbusd (64 u8 x s8).
__attribute__((target("avx512f,avx512vnni"))) int vnni_loop(int64_t iters, bool bytes) {
  __m512i acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_epi32(i);
  const __m512i a = _mm512_set1_epi32(0x01020304), b = _mm512_set1_epi32(0x00050006);
  if (bytes) {
    for (int64_t it = 0; it < iters; ++it)
      for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
  } else {
    for (int64_t it = 0; it < iters; ++it)
      for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpwssd_epi32(acc[i], a, b);
  }
  __m512i s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_epi32(s, acc[i]);
  alignas(64) int t[16];
  _mm512_store_si512(t, s);
  return t[0];
}

int run_kernel_report(std::ostream& out, const KernelReportOptions& o) {
  const auto& feat = cpu::cpu_features();
  const int threads = std::max(1, o.threads);
  ThreadPool pool(threads);
  const double mhz = cpu_mhz();
  out << "lmx kernel report: " << cpu_model() << ", " << std::thread::hardware_concurrency()
      << " cores, tier " << cpu::active_cpu_tier_description() << ", " << threads
      << " threads\n";
  const bool avx512 = feat.use_avx512();
  g_tiers.clear();
  if (o.tier_columns)
    for (cpu::CpuTier t : {cpu::CpuTier::avx2, cpu::CpuTier::avx_vnni, cpu::CpuTier::avx512})
      if (t <= feat.tier() && feat.limited_to(t).tier() == t) g_tiers.push_back(t);

  // --- Roofline: read bandwidth and FMA peak, measured now. ---
  double bw_best2 = 0, bw_med2 = 0;
  {
    const size_t bytes = size_t{1} << 30;
    out << "\nread bandwidth (1 GiB buffer, AVX2 loads, 4 sequential streams per thread), GB/s "
           "median [best] of "
        << o.repeats << ":\n";
    for (bool huge : {false, true}) {
      Buffer buf(bytes, huge);
      for (int t : {1, threads}) {
        if (t == 1 && threads == 1 && huge == false) {
        }
        const auto s = measure_read(pool, t, buf, o.repeats);
        const double med = median(s), best = *std::max_element(s.begin(), s.end());
        out << "  " << (huge ? "huge pages" : "4 KiB pages") << ", " << t << " thread"
            << (t > 1 ? "s" : " ") << ": " << std::fixed << std::setprecision(1) << med << " ["
            << best << "]\n";
        if (huge && t == threads) {
          bw_med2 = med;
          bw_best2 = best;
        }
        if (t == threads && threads == 1) break;
      }
    }
  }
  // The active tier's FMA width: the AVX-512 kernels' roofline is the 16-lane loop.
  const int lanes = avx512 ? 16 : 8;
  const double counted_peak =
      threads * mhz * 1e-3 * 2 * lanes * 2;  // cores x GHz x 2 FMA x lanes x 2
  const double measured_peak =
      avx512 ? measure_loop_gops(pool, threads, 32, fma_loop512)
             : feat.use_avx2() ? measure_fma_gflops(pool, threads) : 0.0;
  out << "FMA peak: counted " << std::setprecision(1) << counted_peak << " GFLOP/s (" << threads
      << " cores x " << mhz / 1000.0 << " GHz x 2 FMA units x " << lanes
      << " lanes x 2), measured FMA loop " << measured_peak << " GFLOP/s\n";
  double int16_peak = 0;
  if (avx512) {
    int16_peak = measure_loop_gops(pool, threads, 64, [](int64_t n) { return vnni_loop(n, false); });
    const double int8_peak =
        measure_loop_gops(pool, threads, 128, [](int64_t n) { return vnni_loop(n, true); });
    out << "VNNI peak (measured loops, 2 ops per multiply-add): vpdpwssd (int16) " << int16_peak
        << " GOP/s, vpdpbusd (int8) " << int8_peak << " GOP/s\n";
  }
  // The nominal clock in /proc/cpuinfo can sit below the boost clock the FMA loop runs at;
  // the ratios use the larger of the two so they never flatter the kernels.
  const double peak = std::max(counted_peak, measured_peak);
  out << "ratios below: %BW against the " << threads << "-thread huge-page bandwidth (median "
      << bw_med2 << " GB/s, best " << bw_best2 << " GB/s), %peak against " << peak
      << " GFLOP/s\n\n";

  Report rep(out, o, bw_med2, peak, int16_peak);
  // Roofline probes re-measured before every timed sample (see time_call).
  Buffer probe(size_t{256} << 20, true);
  const auto bw_now = [&] { return measure_read(pool, threads, probe, 1)[0] * 1e9; };
  const auto fma_now = [&] {
    const int64_t iters = 2'000'000;
    const auto t0 = Clock::now();
    pool.run(
        [&](int, int) {
          g_sink.fetch_add(static_cast<uint64_t>(avx512 ? fma_loop512(iters) : fma_loop(iters)),
                           std::memory_order_relaxed);
        },
        threads);
    return static_cast<double>(iters) * 12 * 2 * lanes * threads / seconds_since(t0);
  };
  rep.header();

  const std::vector<Shape> shapes = {
      {"llama1b", "ffn_up", 8192, 2048},    {"llama1b", "ffn_down", 2048, 8192},
      {"llama1b", "lm_head", 128256, 2048}, {"qwen0.5b", "ffn_up", 4864, 896},
      {"qwen0.5b", "ffn_down", 896, 4864},  {"qwen0.5b", "lm_head", 151936, 896}};
  const auto x = random_vec(size_t{512} * 8192, 1);
  std::vector<float> y(size_t{512} * 151936);

  // --- Decode: m = 1 matvec. ---
  for (const Shape& s : shapes) {
    if (o.quick && std::string(s.name) == "lm_head") continue;
    for (int bits : {4, 8}) {
      std::string base = "q";
      base += std::to_string(bits);
      base += "g64";
      if (!rep.wanted(base + " matvec")) continue;
      QuantData qd(s.n, s.k, bits, 64);
      const cpu::PackedQuantWeight first = cpu::pack_quantized(qd.view);
      const size_t copies = std::max<size_t>(1, kWorkingSet / first.bytes());
      std::vector<cpu::PackedQuantWeight> packs;
      for (size_t c = 0; c < copies; ++c) packs.push_back(first.clone());
      const double bytes = static_cast<double>(s.n * s.k * bits / 8 + 2 * s.n * (s.k / 64) * 2);
      for (cpu::ActivationPrecision prec :
           {cpu::ActivationPrecision::f32, cpu::ActivationPrecision::int16,
            cpu::ActivationPrecision::int8}) {
        cpu::QuantMatmulOptions opt;
        opt.activations = prec;
        const Timing sec = time_call(
            [&](int i) {
              cpu::quantized_matmul(x.data(), s.k, packs[static_cast<size_t>(i) % copies], y.data(),
                                    s.n, 1, opt, &pool);
            },
            o, bw_now, bytes);
        std::string name = base;
        name += prec == cpu::ActivationPrecision::f32     ? " matvec"
                : prec == cpu::ActivationPrecision::int16 ? " matvec int16-x"
                                                          : " matvec int8-x";
        rep.row({name, shape_str(s, 1), sec, bytes, 2.0 * s.n * s.k});
      }
      if (bits == 4 && !o.quick) {
        const Timing sec = time_call(
            [&](int) { cpu::quantized_matmul(x.data(), s.k, qd.view, y.data(), s.n, 1, &pool); }, o,
            bw_now, bytes);
        std::string name = base;
        name += " matvec mlx-layout";
        rep.row({name, shape_str(s, 1), sec, bytes, 2.0 * s.n * s.k});
      }
    }
    if (rep.wanted("bf16 matvec") && s.n * s.k * 2 <= (int64_t{600} << 20)) {
      const size_t count = static_cast<size_t>(s.n * s.k);
      const size_t copies = std::max<size_t>(1, kWorkingSet / (count * 2));
      Buffer buf(copies * count * 2, true);
      auto* h = reinterpret_cast<uint16_t*>(buf.p);
      std::mt19937 rng(5);
      for (size_t i = 0; i < copies * count; ++i)
        h[i] = f32_to_bf16(static_cast<float>(rng() % 2001) * 1e-3f - 1.0f);
      const Timing sec = time_call(
          [&](int i) {
            const cpu::DenseWeightView v{h + (static_cast<size_t>(i) % copies) * count, Dtype::bf16,
                                         s.n, s.k, s.k};
            cpu::matmul_nt(x.data(), s.k, v, y.data(), s.n, 1, &pool);
          },
          o, bw_now, static_cast<double>(count * 2));
      rep.row(
          {"bf16 matvec", shape_str(s, 1), sec, static_cast<double>(count * 2), 2.0 * s.n * s.k});
    }
  }

  // --- Batched decode: m = 1..32 rows over 4-bit weights (continuous batching's steps). ---
  for (const Shape& s : shapes) {
    if (std::string(s.name) != "ffn_up") continue;
    const std::string name = "q4g64 batch";
    if (!rep.wanted(name)) continue;
    QuantData qd(s.n, s.k, 4, 64);
    const cpu::PackedQuantWeight packed = cpu::pack_quantized(qd.view);
    std::vector<float> xb(static_cast<size_t>(32 * s.k)), yb(static_cast<size_t>(32 * s.n));
    for (size_t i = 0; i < xb.size(); ++i) xb[i] = x[i % x.size()];
    for (cpu::ActivationPrecision prec : {cpu::ActivationPrecision::int16, cpu::ActivationPrecision::int8}) {
      cpu::QuantMatmulOptions opt;
      opt.activations = prec;
      const std::string suffix = prec == cpu::ActivationPrecision::int8 ? " int8-x" : " int16-x";
      for (int64_t rows : {1, 2, 4, 8, 16, 32}) {
        const double flops = 2.0 * rows * s.n * s.k;
        const Timing sec = time_call(
            [&](int) { cpu::quantized_matmul(xb.data(), s.k, packed, yb.data(), s.n, rows, opt, &pool); },
            o, fma_now, flops);
        rep.row({name + suffix, shape_str(s, rows), sec, static_cast<double>(packed.bytes()), flops, true});
      }
    }
  }

  // --- Prefill: m = 512 GEMM. ---
  const int64_t m = 512;
  for (const Shape& s : shapes) {
    if (std::string(s.name) != "ffn_up" && (o.quick || std::string(s.name) != "ffn_down")) continue;
    const double flops = 2.0 * m * s.n * s.k;
    for (int bits : {4, 8}) {
      std::string name = "q";
      name += std::to_string(bits);
      name += "g64 gemm";
      if (!rep.wanted(name)) continue;
      QuantData qd(s.n, s.k, bits, 64);
      const cpu::PackedQuantWeight packed = cpu::pack_quantized(qd.view);
      // f32 activations (dequantized into the f32 GEMM) and the model default, int16 x
      // (integer GEMM); GFLOP/s counts the multiply-adds either way.
      for (cpu::ActivationPrecision prec :
           {cpu::ActivationPrecision::f32, cpu::ActivationPrecision::int16, cpu::ActivationPrecision::int8}) {
        cpu::QuantMatmulOptions opt;
        opt.activations = prec;
        const Timing sec = time_call(
            [&](int) { cpu::quantized_matmul(x.data(), s.k, packed, y.data(), s.n, m, opt, &pool); },
            o, fma_now, flops);
        const char* suffix = prec == cpu::ActivationPrecision::f32     ? ""
                             : prec == cpu::ActivationPrecision::int16 ? " int16-x"
                                                                       : " int8-x";
        rep.row({name + suffix, shape_str(s, m), sec, static_cast<double>(packed.bytes()), flops, true});
      }
    }
    for (Dtype dt : {Dtype::bf16, Dtype::f32}) {
      const std::string name = dt == Dtype::bf16 ? "bf16 gemm" : "f32 gemm";
      if (!rep.wanted(name)) continue;
      const size_t count = static_cast<size_t>(s.n * s.k);
      std::vector<uint8_t> wbuf(count * dtype_size(dt));
      std::mt19937 rng(9);
      for (size_t i = 0; i < count; ++i) {
        const float v = static_cast<float>(rng() % 2001) * 1e-3f - 1.0f;
        if (dt == Dtype::bf16) {
          const uint16_t b = f32_to_bf16(v);
          std::memcpy(wbuf.data() + 2 * i, &b, 2);
        } else {
          std::memcpy(wbuf.data() + 4 * i, &v, 4);
        }
      }
      const cpu::DenseWeightView v{wbuf.data(), dt, s.n, s.k, s.k};
      const Timing sec =
          time_call([&](int) { cpu::matmul_nt(x.data(), s.k, v, y.data(), s.n, m, &pool); }, o,
                    fma_now, flops);
      rep.row({name, shape_str(s, m), sec, static_cast<double>(wbuf.size()), flops, true});
    }
  }
  out << "\n(bytes counted for decode: weights + scales + biases as stored by MLX (bf16 "
         "scales/biases);\n"
         " best "
      << threads << "-thread bandwidth this run: " << std::setprecision(1) << bw_best2
      << " GB/s)\n";
  return 0;
}

}  // namespace lmx::bench
