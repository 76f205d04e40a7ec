#include "lmx/backend/cuda/host_staging.h"

#include <cstring>

namespace lmx::cuda {

HostStaging::~HostStaging() {
  for (int i = 0; i < kSlots; ++i) {
    if (pending_[i]) cudaEventSynchronize(events_[i]);
    if (events_[i]) cudaEventDestroy(events_[i]);
  }
  if (ring_) cudaFreeHost(ring_);
}

bool HostStaging::copy(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  if (bytes > kSlotBytes) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  if (failed_) return false;
  if (!ring_) {
    void* p = nullptr;
    if (cudaMallocHost(&p, kSlotBytes * kSlots) != cudaSuccess) {
      cudaGetLastError();
      failed_ = true;
      return false;
    }
    ring_ = static_cast<char*>(p);
    for (int i = 0; i < kSlots; ++i) {
      if (cudaEventCreateWithFlags(&events_[i], cudaEventDisableTiming) != cudaSuccess) {
        cudaGetLastError();
        failed_ = true;
        return false;
      }
    }
  }
  const int slot = next_;
  next_ = (next_ + 1) % kSlots;
  if (pending_[slot] && cudaEventSynchronize(events_[slot]) != cudaSuccess) return false;  // the error stays set
  pending_[slot] = false;
  char* staged = ring_ + static_cast<size_t>(slot) * kSlotBytes;
  std::memcpy(staged, src, bytes);
  if (cudaMemcpyAsync(dst, staged, bytes, cudaMemcpyHostToDevice, stream) != cudaSuccess) return false;
  pending_[slot] = cudaEventRecord(events_[slot], stream) == cudaSuccess;
  if (!pending_[slot]) cudaStreamSynchronize(stream);  // no event: make sure the slot is read
  return true;
}

}  // namespace lmx::cuda
