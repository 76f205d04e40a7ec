// With LMX_CUDA_PROFILE set, the CUDA backend counts what it asks of the driver per op
// (kernel launches, copies each way, stream synchronizations, cudaMalloc) and times it:
// the device time of each launch between CUDA events recorded around it, and the host
// time spent waiting in synchronizations. The table goes to stderr at exit. It says where
// a decode step's time goes without a system profiler (the device machines have no
// nsys); the events cost host time, so time speed with the profile off.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace lmx::cuda {

class CallProfile {
 public:
  // The process's profile, or null when LMX_CUDA_PROFILE is unset (the usual case).
  static CallProfile* active();

  // Around one launch on `stream` (kernels and cuBLAS calls alike).
  void before_launch(cudaStream_t stream);
  void after_launch(cudaStream_t stream, const char* op);
  // A host wait of `seconds` in a stream synchronization for `op`.
  void note_sync(const char* op, double seconds);
  void note_copy(const char* direction, size_t bytes);
  void note_malloc(size_t bytes);
  void print();

 private:
  struct Row {
    long count = 0;
    double seconds = 0;  // device time of launches, host wait of syncs
    double bytes = 0;
  };
  struct Pending {
    std::string op;
    size_t events;  // index into events_ of the start event; the end is the next one
  };
  void resolve_locked();

  std::mutex mutex_;
  std::map<std::string, Row> launches_, syncs_, copies_;
  Row mallocs_;
  std::vector<cudaEvent_t> events_;
  std::vector<Pending> pending_;
  size_t used_ = 0;
};

// Launch `f` (returning a cudaError_t) on `stream`, timed when the profile is on.
template <class F>
cudaError_t profiled_launch(cudaStream_t stream, const char* op, F&& f) {
  CallProfile* p = CallProfile::active();
  if (!p) return f();
  p->before_launch(stream);
  const cudaError_t e = f();
  p->after_launch(stream, op);
  return e;
}

}  // namespace lmx::cuda
