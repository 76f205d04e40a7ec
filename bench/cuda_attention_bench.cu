// The decode attention kernel alone (decode_attention.cu) on the Llama-3.2-1B shape (32 q
// heads, 8 kv heads, head_dim 64, f32 and bf16 K / V): microseconds per launch at batch 1 and 32,
// timed with events over back-to-back launches, then the same launches each after a small
// kernel that prefers the largest L1 (no shared memory), as the decode step's other kernels
// do: if the second time is much larger, the SMs' L1 / shared memory split is being
// reconfigured between kernels.
//   cuda_attention_bench [keys]
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "cuda_check.h"
#include "lmx/backend/cuda/decode_attention.h"

namespace {

using namespace lmx::cuda::detail;

using lmx::bench::check;

float* random_floats(size_t n, unsigned seed) {
  std::vector<float> h(n);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (float& v : h) v = d(rng);
  float* p = nullptr;
  check(cudaMalloc(&p, n * sizeof(float)), "cudaMalloc");
  check(cudaMemcpy(p, h.data(), n * sizeof(float), cudaMemcpyHostToDevice), "upload");
  return p;
}

// n random values in bf16 (upper halves of f32, as random as the f32 ones).
void* random_bf16(size_t n, unsigned seed) {
  std::vector<uint16_t> h(n);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (uint16_t& v : h) {
    const float f = d(rng);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    v = static_cast<uint16_t>(u >> 16);
  }
  void* p = nullptr;
  check(cudaMalloc(&p, n * 2), "cudaMalloc");
  check(cudaMemcpy(p, h.data(), n * 2, cudaMemcpyHostToDevice), "upload");
  return p;
}

__global__ void l1_kernel(float* x) {
  if (threadIdx.x == 0 && blockIdx.x == 0) x[0] += 1.0f;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t keys = argc > 1 ? std::atoll(argv[1]) : 576;
  constexpr int64_t kHq = 32, kHkv = 8, kD = 64;
  cudaStream_t s;
  check(cudaStreamCreate(&s), "stream");
  check(cudaFuncSetAttribute(l1_kernel, cudaFuncAttributePreferredSharedMemoryCarveout, 0), "carveout");
  float* dummy = random_floats(1, 1);
  for (int dt : {kF32, kBF16})
  for (int64_t batch : {1, 32}) {
    Attention a;
    a.batch = batch, a.q_heads = kHq, a.kv_heads = kHkv, a.q_len = 1, a.kv_len = keys, a.head_dim = kD;
    a.v_head_dim = kD;
    a.q = random_floats(static_cast<size_t>(batch * kHq * kD), 2);
    const int64_t q_strides[4] = {kHq * kD, kD, kD, 1};
    std::copy(q_strides, q_strides + 4, a.q_strides);
    const int64_t kv_strides[4] = {kHkv * keys * kD, keys * kD, kD, 1};
    const size_t kv_n = static_cast<size_t>(batch * kHkv * keys * kD);
    a.k = dt == kF32 ? static_cast<void*>(random_floats(kv_n, 3)) : random_bf16(kv_n, 3);
    a.v = dt == kF32 ? static_cast<void*>(random_floats(kv_n, 4)) : random_bf16(kv_n, 4);
    std::copy(kv_strides, kv_strides + 4, a.k_strides);
    std::copy(kv_strides, kv_strides + 4, a.v_strides);
    a.kv_dtype = dt;
    a.out = random_floats(static_cast<size_t>(batch * kHq * kD), 5);
    std::copy(q_strides, q_strides + 4, a.out_strides);
    a.scale = 0.125f, a.causal = true, a.q_offset = keys - 1;
    float* scratch = random_floats(static_cast<size_t>(decode_attention_scratch_floats(a, keys)), 6);
    unsigned* counters = nullptr;
    check(cudaMalloc(&counters, decode_attention_counters(a) * sizeof(unsigned)), "cudaMalloc");
    check(cudaMemset(counters, 0, decode_attention_counters(a) * sizeof(unsigned)), "memset");
    cudaEvent_t e0, e1;
    check(cudaEventCreate(&e0), "event");
    check(cudaEventCreate(&e1), "event");
    for (bool with_l1 : {false, true}) {
      constexpr int kReps = 200;
      auto run = [&](int n) {
        for (int i = 0; i < n; ++i) {
          if (with_l1) l1_kernel<<<132, 128, 0, s>>>(dummy);
          check(launch_decode_attention(a, nullptr, keys, scratch, counters, s), "attention");
        }
      };
      run(20);
      check(cudaEventRecord(e0, s), "record");
      run(kReps);
      check(cudaEventRecord(e1, s), "record");
      check(cudaEventSynchronize(e1), "sync");
      float ms = 0;
      check(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
      const double bytes = 2.0 * batch * kHkv * keys * kD * (dt == kF32 ? 4 : 2);
      std::printf("%s batch %2lld keys %lld tiles/split %d%s: %.2f us per step (%.0f GB/s of K + V)\n",
                  dt == kF32 ? "f32 " : "bf16", static_cast<long long>(batch), static_cast<long long>(keys), decode_tiles_per_split(a),
                  with_l1 ? ", each after an L1-preferring kernel" : "", 1000.0 * ms / kReps,
                  bytes * kReps / (ms * 1e6));
    }
  }
  return 0;
}
