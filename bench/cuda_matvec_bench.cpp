// The decode step's matvecs of the Llama-3.2-1B shape on the GPU, without the model: per
// layer q/k/v in one launch, o, gate/up in one launch and down, then the tied lm_head,
// every layer with its own weights (2.5 GB in bf16, far past L2), captured in one CUDA
// graph and replayed, so the time is the kernels' own (no host launch gaps). Prints the
// device-to-device copy bandwidth (bytes read + written) measured in the same run, and
// each format's weight bytes per step over its time: the matvecs' share of the copy
// bandwidth that docs/performance.md's roofline uses.
//   cuda_matvec_bench [reps]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cuda_check.h"
#include "lmx/backend/cuda/matvec_kernels.h"

namespace {

using namespace lmx::cuda::detail;

using lmx::bench::check;

constexpr int64_t kHidden = 2048, kInter = 8192, kHeads = 32, kKvHeads = 8, kHeadDim = 64, kVocab = 128256,
                  kLayers = 16;

// Random bytes, uploaded once and copied into every buffer (never time zeros).
class Filler {
 public:
  Filler() : host_(size_t{64} << 20) {
    std::mt19937 rng(7);
    for (auto& b : host_) b = static_cast<unsigned char>(rng() & 0x3f);  // small bf16 / f16 values, any codes
    check(cudaMalloc(&dev_, host_.size()), "cudaMalloc");
    check(cudaMemcpy(dev_, host_.data(), host_.size(), cudaMemcpyHostToDevice), "upload");
  }
  void* make(size_t bytes) {
    void* p = nullptr;
    check(cudaMalloc(&p, bytes), "cudaMalloc");
    for (size_t off = 0; off < bytes; off += host_.size()) {
      const size_t n = std::min(host_.size(), bytes - off);
      check(cudaMemcpy(static_cast<char*>(p) + off, dev_, n, cudaMemcpyDeviceToDevice), "fill");
    }
    return p;
  }

 private:
  std::vector<unsigned char> host_;
  void* dev_ = nullptr;
};

double copy_gbps(cudaStream_t s) {
  const size_t bytes = size_t{2} << 30;
  void *a = nullptr, *b = nullptr;
  check(cudaMalloc(&a, bytes), "cudaMalloc");
  check(cudaMalloc(&b, bytes), "cudaMalloc");
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0), cudaEventCreate(&e1);
  for (int i = 0; i < 3; ++i) check(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s), "copy");
  cudaEventRecord(e0, s);
  for (int i = 0; i < 10; ++i) check(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s), "copy");
  cudaEventRecord(e1, s);
  check(cudaEventSynchronize(e1), "sync");
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  cudaFree(a), cudaFree(b);
  return 2.0 * bytes * 10 / (ms * 1e-3) / 1e9;
}

struct Matrix {
  int64_t n, k;
  int bits;
  Dense dense;
  Quant quant;
  size_t bytes;
};

Matrix make_matrix(Filler& f, int64_t n, int64_t k, int bits) {
  Matrix m{n, k, bits, {}, {}, 0};
  if (bits == 16) {
    m.bytes = static_cast<size_t>(n * k) * 2;
    m.dense = {static_cast<const uint16_t*>(f.make(m.bytes)), kBF16, n, k, k};
    return m;
  }
  const int group = 64;
  const size_t w_bytes = static_cast<size_t>(n * k * bits / 8), s_bytes = static_cast<size_t>(n * (k / group)) * 2;
  m.bytes = w_bytes + 2 * s_bytes;
  m.quant.w = static_cast<const uint32_t*>(f.make(w_bytes));
  m.quant.scales = f.make(s_bytes);
  m.quant.biases = f.make(s_bytes);
  m.quant.scale_dtype = kBF16;
  m.quant.n = n, m.quant.k = k, m.quant.bits = bits, m.quant.group_size = group;
  m.quant.w_stride = k * bits / 32, m.quant.s_stride = k / group;
  return m;
}

// One launch over `mats` (one x, one output buffer each).
void launch(const std::vector<const Matrix*>& mats, const float* x, float* const* y, cudaStream_t s) {
  cudaError_t e = cudaSuccess;
  const int count = static_cast<int>(mats.size());
  const int64_t ldy[4] = {mats[0]->n, count > 1 ? mats[1]->n : 0, count > 2 ? mats[2]->n : 0, count > 3 ? mats[3]->n : 0};
  bool ok;
  if (mats[0]->bits == 16) {
    Dense d[4];
    for (int i = 0; i < count; ++i) d[i] = mats[static_cast<size_t>(i)]->dense;
    ok = launch_vector_matvec_dense_targets(x, mats[0]->k, d, y, ldy, count, 1, s, &e);
  } else {
    Quant q[4];
    for (int i = 0; i < count; ++i) q[i] = mats[static_cast<size_t>(i)]->quant;
    ok = launch_vector_matvec_quant_targets(x, mats[0]->k, q, y, ldy, count, 1, s, &e);
  }
  if (!ok) {
    std::fprintf(stderr, "the matvec kernel refused a shape\n");
    std::exit(1);
  }
  check(e, "launch");
}

// Median-free simple timing: `reps` graph replays after 3 warm-ups, ms per replay.
double time_graph(cudaStream_t s, int reps, const std::function<void()>& body) {
  cudaGraph_t g;
  cudaGraphExec_t ge;
  check(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), "capture");
  body();
  check(cudaStreamEndCapture(s, &g), "capture end");
  check(cudaGraphInstantiate(&ge, g, 0), "instantiate");
  for (int i = 0; i < 3; ++i) check(cudaGraphLaunch(ge, s), "graph");
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0), cudaEventCreate(&e1);
  cudaEventRecord(e0, s);
  for (int i = 0; i < reps; ++i) check(cudaGraphLaunch(ge, s), "graph");
  cudaEventRecord(e1, s);
  check(cudaEventSynchronize(e1), "sync");
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  cudaGraphExecDestroy(ge);
  cudaGraphDestroy(g);
  return ms / reps;
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 20;
  cudaStream_t s;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  const double copy = copy_gbps(s);
  std::printf("device %s, %d SMs; device-to-device copy %.0f GB/s (read + write)\n", prop.name,
              prop.multiProcessorCount, copy);
  Filler f;
  float *x = nullptr, *y = nullptr;
  check(cudaMalloc(&x, kInter * sizeof(float)), "cudaMalloc");
  check(cudaMalloc(&y, 4 * kVocab * sizeof(float)), "cudaMalloc");
  {
    std::vector<float> hx(kInter);
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (auto& v : hx) v = u(rng);
    check(cudaMemcpy(x, hx.data(), hx.size() * sizeof(float), cudaMemcpyHostToDevice), "x");
  }
  float* ys[4] = {y, y + kVocab, y + 2 * kVocab, y + 3 * kVocab};
  std::printf("%-6s %-22s %10s %10s %9s %8s\n", "format", "matvecs (x16 layers)", "MB", "us", "GB/s", "% copy");
  for (int bits : {16, 8, 4}) {
    const char* name = bits == 16 ? "bf16" : bits == 8 ? "q8" : "q4";
    std::vector<Matrix> q, k, v, o, gate, up, down;
    for (int64_t l = 0; l < kLayers; ++l) {
      q.push_back(make_matrix(f, kHeads * kHeadDim, kHidden, bits));
      k.push_back(make_matrix(f, kKvHeads * kHeadDim, kHidden, bits));
      v.push_back(make_matrix(f, kKvHeads * kHeadDim, kHidden, bits));
      o.push_back(make_matrix(f, kHidden, kHeads * kHeadDim, bits));
      gate.push_back(make_matrix(f, kInter, kHidden, bits));
      up.push_back(make_matrix(f, kInter, kHidden, bits));
      down.push_back(make_matrix(f, kHidden, kInter, bits));
    }
    Matrix head = make_matrix(f, kVocab, kHidden, bits);
    auto row = [&](const char* what, const std::function<std::vector<const Matrix*>(int64_t)>& of, int layers) {
      size_t bytes = 0;
      for (int64_t l = 0; l < layers; ++l)
        for (const Matrix* m : of(l)) bytes += m->bytes;
      const double ms = time_graph(s, reps, [&] {
        for (int64_t l = 0; l < layers; ++l) launch(of(l), x, ys, s);
      });
      std::printf("%-6s %-22s %10.1f %10.1f %9.0f %7.1f%%\n", name, what, bytes / 1e6, ms * 1e3,
                  bytes / (ms * 1e-3) / 1e9, 100.0 * bytes / (ms * 1e-3) / 1e9 / copy);
    };
    row("q/k/v (one launch)", [&](int64_t l) { return std::vector<const Matrix*>{&q[l], &k[l], &v[l]}; }, kLayers);
    row("q alone", [&](int64_t l) { return std::vector<const Matrix*>{&q[l]}; }, kLayers);
    row("o", [&](int64_t l) { return std::vector<const Matrix*>{&o[l]}; }, kLayers);
    row("gate/up (one launch)", [&](int64_t l) { return std::vector<const Matrix*>{&gate[l], &up[l]}; }, kLayers);
    row("down", [&](int64_t l) { return std::vector<const Matrix*>{&down[l]}; }, kLayers);
    row("lm_head", [&](int64_t) { return std::vector<const Matrix*>{&head}; }, 1);
    // The whole step: 4 launches per layer + lm_head.
    size_t bytes = head.bytes;
    for (int64_t l = 0; l < kLayers; ++l)
      bytes += q[l].bytes + k[l].bytes + v[l].bytes + o[l].bytes + gate[l].bytes + up[l].bytes + down[l].bytes;
    const double ms = time_graph(s, reps, [&] {
      for (int64_t l = 0; l < kLayers; ++l) {
        launch({&q[l], &k[l], &v[l]}, x, ys, s);
        launch({&o[l]}, x, ys, s);
        launch({&gate[l], &up[l]}, x, ys, s);
        launch({&down[l]}, x, ys, s);
      }
      launch({&head}, x, ys, s);
    });
    std::printf("%-6s %-22s %10.1f %10.1f %9.0f %7.1f%%\n", name, "WHOLE STEP", bytes / 1e6, ms * 1e3,
                bytes / (ms * 1e-3) / 1e9, 100.0 * bytes / (ms * 1e-3) / 1e9 / copy);
    auto free_all = [](std::vector<Matrix>& ms) {
      for (Matrix& m : ms) {
        cudaFree(const_cast<uint16_t*>(m.dense.w));
        cudaFree(const_cast<uint32_t*>(m.quant.w));
        cudaFree(const_cast<void*>(m.quant.scales));
        cudaFree(const_cast<void*>(m.quant.biases));
      }
    };
    for (auto* ms : {&q, &k, &v, &o, &gate, &up, &down}) free_all(*ms);
    std::vector<Matrix> h{head};
    free_all(h);
  }
  return 0;
}
