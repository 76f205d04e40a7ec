// CPU emulation of the CUDA runtime + programming model, for checking kernel logic without a GPU.
#pragma once
#include <barrier>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>
using std::isnan;
struct uint3 { unsigned x = 0, y = 0, z = 0; };
struct dim3 { unsigned x = 1, y = 1, z = 1; dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {} };
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
#define __shared__ static
namespace emu {
inline thread_local uint3 tl_block, tl_thread;
inline thread_local dim3 tl_bdim, tl_gdim;
inline thread_local std::barrier<>* tl_block_barrier = nullptr;
inline thread_local std::barrier<>* tl_warp_barrier = nullptr;
inline thread_local float* tl_warp_buf = nullptr;
template <typename F>
void launch(dim3 g, dim3 b, F f) {
  const unsigned nt = b.x * b.y * b.z;
  const unsigned nw = (nt + 31) / 32;
  std::unique_ptr<std::barrier<>> block_bar;
  std::vector<std::unique_ptr<std::barrier<>>> warp_bars(nw);
  std::vector<float> warp_buf(nw * 32);
  uint3 cur{};
  bool done = false;
  auto setup = [&]() noexcept {};
  std::barrier<decltype(setup)> start(nt + 1, setup), finish(nt + 1, setup);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < nt; ++t) {
    threads.emplace_back([&, t] {
      tl_thread = {t % b.x, (t / b.x) % b.y, t / (b.x * b.y)};
      tl_bdim = b; tl_gdim = g;
      tl_warp_buf = warp_buf.data() + (t / 32) * 32;
      for (;;) {
        start.arrive_and_wait();
        if (done) return;
        tl_block = cur;
        tl_block_barrier = block_bar.get();
        tl_warp_barrier = warp_bars[t / 32].get();
        f();
        tl_warp_barrier->arrive_and_drop();
        tl_block_barrier->arrive_and_drop();
        finish.arrive_and_wait();
      }
    });
  }
  for (unsigned bz = 0; bz < g.z; ++bz) for (unsigned by = 0; by < g.y; ++by) for (unsigned bx = 0; bx < g.x; ++bx) {
    cur = {bx, by, bz};
    block_bar = std::make_unique<std::barrier<>>(nt);
    for (unsigned w = 0; w < nw; ++w) warp_bars[w] = std::make_unique<std::barrier<>>(std::min(32u, nt - 32 * w));
    start.arrive_and_wait();
    finish.arrive_and_wait();
  }
  done = true;
  start.arrive_and_wait();
  for (auto& th : threads) th.join();
}
}  // namespace emu
#define blockIdx emu::tl_block
#define threadIdx emu::tl_thread
#define blockDim emu::tl_bdim
#define gridDim emu::tl_gdim
inline void __syncthreads() { emu::tl_block_barrier->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned, float v, int o) {
  const unsigned lane = (threadIdx.x + threadIdx.y * blockDim.x) % 32;
  emu::tl_warp_barrier->arrive_and_wait();
  emu::tl_warp_buf[lane] = v;
  emu::tl_warp_barrier->arrive_and_wait();
  float r = emu::tl_warp_buf[lane ^ static_cast<unsigned>(o)];
  emu::tl_warp_barrier->arrive_and_wait();
  return r;
}
inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
inline float __fdiv_rn(float a, float b) { volatile float r = a / b; return r; }
inline float __uint_as_float(uint32_t u) { return std::bit_cast<float>(u); }
inline uint32_t __float_as_uint(float f) { return std::bit_cast<uint32_t>(f); }

enum cudaError_t { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 };
using cudaError = cudaError_t;
inline const char* cudaGetErrorString(cudaError_t) { return "emulated error"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
struct CUstream_st {};
using cudaStream_t = CUstream_st*;
#define cudaStreamPerThread (static_cast<cudaStream_t>(nullptr))
#define cudaStreamNonBlocking 1
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
struct cudaDeviceProp { char name[256] = "emulated"; };
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
inline cudaError_t cudaMemGetInfo(size_t* f, size_t* t) { *f = size_t{8} << 30; *t = size_t{16} << 30; return cudaSuccess; }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp*, int) { return cudaSuccess; }
inline cudaError_t cudaMalloc(void** p, size_t n) {
  // Poison fresh memory so reads of unwritten device memory show.
  *p = std::aligned_alloc(256, (n + 255) / 256 * 256 + 256);
  std::memset(*p, 0xA5, (n + 255) / 256 * 256);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaFree(void* p) { std::free(p); return cudaSuccess; }
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) { std::memcpy(d, s, n); return cudaSuccess; }
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t) { std::memcpy(d, s, n); return cudaSuccess; }
inline cudaError_t cudaMemcpy2DAsync(void* d, size_t dp, const void* s, size_t sp, size_t w, size_t h, cudaMemcpyKind, cudaStream_t) {
  if (dp < w || sp < w) return cudaErrorMemoryAllocation;
  for (size_t r = 0; r < h; ++r) std::memcpy(static_cast<char*>(d) + r * dp, static_cast<const char*>(s) + r * sp, w);
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { *s = new CUstream_st; return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
struct cudaMemPoolSt {};
using cudaMemPool_t = cudaMemPoolSt*;
enum cudaMemPoolAttr { cudaMemPoolAttrReleaseThreshold, cudaMemPoolAttrReservedMemCurrent };
inline cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* p, int) { static cudaMemPoolSt pool; *p = &pool; return cudaSuccess; }
inline uint64_t& emu_pool_bytes() { static uint64_t b = 0; return b; }
inline cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t, cudaMemPoolAttr, void* v) { *static_cast<uint64_t*>(v) = emu_pool_bytes(); return cudaSuccess; }
inline cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t, cudaMemPoolAttr, void*) { return cudaSuccess; }
inline cudaError_t cudaMemPoolTrimTo(cudaMemPool_t, size_t b) { if (emu_pool_bytes() > b) emu_pool_bytes() = b; return cudaSuccess; }
inline cudaError_t cudaMallocAsync(void** p, size_t n, cudaStream_t) { emu_pool_bytes() += n; return cudaMalloc(p, n); }
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) { return cudaFree(p); }
