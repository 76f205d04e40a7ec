// The NCCL group's timeout (docs/tensor_parallel.md): after each collective is queued on a
// rank's stream an event is recorded behind it, and a thread checks the events; a collective
// not finished on its GPU `timeout` after it was queued calls on_timeout (the group's abort:
// ncclCommAbort releases every rank blocked inside NCCL, and each rank's next collective
// throws the reason). Finished events are kept for reuse (two collectives a layer a step:
// no event made per collective). NCCL itself waits forever for a rank that never arrives. Steps being
// captured into a CUDA graph are not tracked (events of a capture are graph nodes).
#pragma once

#include <cuda_runtime.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace lmx::cuda {

class CollectiveWatchdog {
 public:
  CollectiveWatchdog(std::chrono::milliseconds timeout, std::function<void(const std::string&)> on_timeout);
  ~CollectiveWatchdog();
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  // `what` (e.g. "rank 1's ncclAllReduce") was just queued on `stream` of `device`.
  void queued(int device, cudaStream_t stream, std::string what);

  // LMX_TP_TIMEOUT_SECONDS when set to a positive number, else 10 minutes (the thread
  // group's default).
  static std::chrono::milliseconds configured_timeout();

 private:
  struct Pending {
    int device;
    cudaEvent_t event;
    std::chrono::steady_clock::time_point queued;
    std::string what;
  };
  void run();
  void drop_all();  // pending and spare events destroyed, with mutex_ held

  const std::chrono::milliseconds timeout_;
  const std::function<void(const std::string&)> on_timeout_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Pending> pending_;
  std::vector<std::pair<int, cudaEvent_t>> spare_;  // finished events by device, for reuse
  bool stop_ = false;
  bool fired_ = false;
  std::thread thread_;
};

}  // namespace lmx::cuda
