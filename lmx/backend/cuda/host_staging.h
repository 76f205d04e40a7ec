// Small host-to-device copies without waiting for the device. A copy from pageable host
// memory needs the source kept until the device has read it, so the backend used to wait
// for its stream after each one; in a batched decode step (a mask and row positions per
// layer) those waits drained the queue many times a step. Here the bytes go first into a
// ring of page-locked slots (a plain memcpy, so the caller's memory is free on return), the
// device copies from the slot in stream order, and a slot is written again only after the
// copy that last read it is done (an event per slot). Not for graph captures: a captured
// copy would read the slot's contents at replay time.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <mutex>

namespace lmx::cuda {

class HostStaging {
 public:
  static constexpr size_t kSlotBytes = size_t{256} << 10;
  static constexpr int kSlots = 32;

  HostStaging() = default;
  HostStaging(const HostStaging&) = delete;
  HostStaging& operator=(const HostStaging&) = delete;
  ~HostStaging();

  // Queues the copy of `bytes` from host `src` to device `dst` on `stream`. False (nothing
  // queued) when it is larger than a slot or the page-locked ring could not be made.
  bool copy(void* dst, const void* src, size_t bytes, cudaStream_t stream);

 private:
  std::mutex mutex_;
  char* ring_ = nullptr;
  bool failed_ = false;
  cudaEvent_t events_[kSlots] = {};
  bool pending_[kSlots] = {};
  int next_ = 0;
};

}  // namespace lmx::cuda
