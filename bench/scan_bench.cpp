// The recurrent scans' decode step against the memory roofline (issue 20): one token
// through `ops::gated_delta_scan` (Qwen3-Next's shape in bench/configs/qwen3-next-1b.json:
// 16 value heads, 8 key heads, 128 x 128 per head) and `ops::ssm_scan` (a Mamba2 layer:
// 32 heads, head dim 64, state 128), each over many layers' states of 1 MiB, far more
// than the caches hold, as a model's decode step walks them. A step reads and writes its
// state once, so its bytes are 2 x the state; the roofline is a streaming read of a
// 512 MiB buffer on the same threads in the same run (writes cost at least as much as
// reads, so this bound is optimistic). The fastest of the passes is kept.
//   scan_bench [layers=256] [passes=8]   (256 MiB of states: past a 32 MiB L3)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <vector>

#include "lmx/base/thread_pool.h"
#include "lmx/core/ops/ssm.h"
#include "lmx/core/tensor.h"

namespace {

using namespace lmx;
using Clock = std::chrono::steady_clock;

Tensor random_tensor(const Shape& shape, uint32_t seed, float lo, float hi) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& e : v) e = dist(rng);
  return Tensor::from_vector(v, shape);
}

// Seconds of the fastest of `passes` calls of fn.
double best_seconds(int passes, const std::function<void()>& fn) {
  double best = 1e30;
  for (int p = 0; p < passes; ++p) {
    const auto t0 = Clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

double stream_read_gbs(int passes) {
  const size_t n = (512u << 20) / sizeof(uint64_t);
  std::vector<uint64_t> buf(n, 1);
  ThreadPool& pool = ThreadPool::global();
  std::vector<uint64_t> part(static_cast<size_t>(pool.num_threads()), 0);
  const double s = best_seconds(passes, [&] {
    pool.run([&](int t, int nt) {
      const size_t b = n * static_cast<size_t>(t) / static_cast<size_t>(nt);
      const size_t e = n * static_cast<size_t>(t + 1) / static_cast<size_t>(nt);
      uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (size_t i = b; i + 4 <= e; i += 4) a0 += buf[i], a1 += buf[i + 1], a2 += buf[i + 2], a3 += buf[i + 3];
      part[static_cast<size_t>(t)] += a0 + a1 + a2 + a3;
    });
  });
  uint64_t sum = 0;
  for (uint64_t p : part) sum += p;
  if (sum == 0) std::printf("(empty read)\n");
  return static_cast<double>(n * sizeof(uint64_t)) / s / 1e9;
}

void report(const char* name, int layers, int64_t state_bytes, double seconds, double roof_gbs) {
  const double bytes = 2.0 * static_cast<double>(state_bytes) * layers;
  const double gbs = bytes / seconds / 1e9;
  std::printf("| %s | %d x %.2f MiB | %.1f us | %.1f | %.0f%% |\n", name, layers,
              static_cast<double>(state_bytes) / (1 << 20), seconds / layers * 1e6, gbs, 100.0 * gbs / roof_gbs);
}

}  // namespace

int main(int argc, char** argv) {
  const int layers = argc > 1 ? std::max(1, std::atoi(argv[1])) : 256;
  const int passes = argc > 2 ? std::max(1, std::atoi(argv[2])) : 8;
  const double roof = stream_read_gbs(passes);
  std::printf("threads %d, stream read %.1f GB/s (512 MiB, fastest of %d)\n\n", ThreadPool::global().num_threads(),
              roof, passes);
  std::printf("| scan, decode step | states | per layer | GB/s (read + write) | of stream read |\n|---|---|---|---|---|\n");

  {  // Gated delta rule, Qwen3-Next's linear attention.
    const int64_t hk = 8, hv = 16, dk = 128, dv = 128;
    const Tensor q = random_tensor({1, 1, hk, dk}, 1, -0.1f, 0.1f), k = random_tensor({1, 1, hk, dk}, 2, -0.1f, 0.1f);
    const Tensor v = random_tensor({1, 1, hv, dv}, 3, -1.0f, 1.0f);
    const Tensor g = random_tensor({1, 1, hv}, 4, -0.2f, -0.01f), beta = random_tensor({1, 1, hv}, 5, 0.1f, 0.9f);
    std::vector<Tensor> states;
    for (int l = 0; l < layers; ++l) states.push_back(random_tensor({1, hv, dk, dv}, 10u + static_cast<uint32_t>(l), -0.1f, 0.1f));
    const double s = best_seconds(passes, [&] {
      for (Tensor& st : states) (void)ops::gated_delta_scan(q, k, v, g, beta, st);
    });
    report("gated_delta_scan (16 x 128 x 128)", layers, hv * dk * dv * 4, s, roof);
  }
  {  // Selective scan, a Mamba2 layer.
    const int64_t h = 32, p = 64, n = 128, groups = 1;
    const Tensor x = random_tensor({1, 1, h, p}, 6, -1.0f, 1.0f), dt = random_tensor({1, 1, h}, 7, 0.01f, 0.2f);
    const Tensor a = random_tensor({h, n}, 8, -1.0f, -0.1f), d = random_tensor({h}, 9, -1.0f, 1.0f);
    const Tensor b = random_tensor({1, 1, groups, n}, 10, -1.0f, 1.0f), c = random_tensor({1, 1, groups, n}, 11, -1.0f, 1.0f);
    std::vector<Tensor> states;
    for (int l = 0; l < layers; ++l) states.push_back(random_tensor({1, h, p, n}, 100u + static_cast<uint32_t>(l), -0.1f, 0.1f));
    const double s = best_seconds(passes, [&] {
      for (Tensor& st : states) (void)ops::ssm_scan(x, dt, a, b, c, d, st);
    });
    report("ssm_scan (32 x 64 x 128)", layers, h * p * n * 4, s, roof);
  }
  return 0;
}
