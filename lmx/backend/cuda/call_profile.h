// With LMX_CUDA_PROFILE set, the CUDA backend counts what it asks of the driver per op
// (kernel launches, copies each way, stream synchronizations, cudaMalloc) and times it:
// the device time of each launch between CUDA events recorded around it, and the host
// time spent waiting in synchronizations. The table goes to stderr at exit. It says where
// a decode step's time goes without a system profiler (the device machines have no
// nsys); the events cost host time, so time speed with the profile off. Each launch's
// host time (the call that queues it) is summed too: where the GPU waits for the host,
// the events' time includes the wait, and the host column shows it. With
// LMX_CUDA_PROFILE=shapes the rows of the GEMMs, reductions and attention are split by
// their sizes.
#pragma once

#include <cuda_runtime.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace lmx::cuda {

class CallProfile {
 public:
  // The process's profile, or null when LMX_CUDA_PROFILE is unset (the usual case).
  static CallProfile* active();
  // LMX_CUDA_PROFILE=shapes: rows split by the sizes shaped() appends.
  bool by_shape() const { return by_shape_; }
  // "op m=.. n=.." from names and values (the row of one shape).
  static std::string shaped(const char* op, std::initializer_list<std::pair<const char*, int64_t>> sizes);

  // Around one launch on `stream` (kernels and cuBLAS calls alike); `host_seconds` is the
  // time the call that queued it took.
  void before_launch(cudaStream_t stream);
  void after_launch(cudaStream_t stream, std::string_view op, double host_seconds);
  // A host wait of `seconds` in a stream synchronization for `op`.
  void note_sync(const char* op, double seconds);
  void note_copy(const char* direction, size_t bytes);
  void note_malloc(size_t bytes, double seconds);
  void note_free(size_t bytes, double seconds);
  void print();

 private:
  explicit CallProfile(bool by_shape);
  struct Row {
    long count = 0;
    double seconds = 0;       // device time of launches, host wait of syncs, host time of cudaMalloc / cudaFree
    double host_seconds = 0;  // launches: host time queuing them
    double bytes = 0;
  };
  struct Pending {
    std::string op;
    size_t events;  // index into events_ of the start event; the end is the next one
  };
  void resolve_locked();

  std::mutex mutex_;
  std::map<std::string, Row> launches_, syncs_, copies_;
  Row mallocs_, frees_;
  bool by_shape_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::vector<cudaEvent_t> events_;
  std::vector<Pending> pending_;
  size_t used_ = 0;
};

// Launch `f` (returning a cudaError_t) on `stream`, timed when the profile is on.
template <class F>
cudaError_t profiled_launch(cudaStream_t stream, std::string_view op, F&& f) {
  CallProfile* p = CallProfile::active();
  if (!p) return f();
  p->before_launch(stream);
  const auto t0 = std::chrono::steady_clock::now();
  const cudaError_t e = f();
  p->after_launch(stream, op, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return e;
}

}  // namespace lmx::cuda
