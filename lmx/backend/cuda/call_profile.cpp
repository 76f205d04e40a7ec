#include "lmx/backend/cuda/call_profile.h"

#include <cstdio>
#include <cstdlib>

namespace lmx::cuda {

CallProfile* CallProfile::active() {
  // Never destroyed: launches may come from other statics' destructors.
  static CallProfile* profile = [] {
    if (!std::getenv("LMX_CUDA_PROFILE")) return static_cast<CallProfile*>(nullptr);
    auto* p = new CallProfile();
    std::atexit([] { active()->print(); });
    return p;
  }();
  return profile;
}

void CallProfile::before_launch(cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(mutex_);
  // Resolve in batches: the synchronization this needs is the profile's own cost.
  if (used_ + 2 > 8192) resolve_locked();
  while (events_.size() < used_ + 2) {
    cudaEvent_t e;
    cudaEventCreate(&e);
    events_.push_back(e);
  }
  cudaEventRecord(events_[used_], stream);
}

void CallProfile::after_launch(cudaStream_t stream, const char* op) {
  std::lock_guard<std::mutex> lock(mutex_);
  cudaEventRecord(events_[used_ + 1], stream);
  pending_.push_back({op, used_});
  used_ += 2;
}

void CallProfile::resolve_locked() {
  if (used_ > 0) cudaEventSynchronize(events_[used_ - 1]);
  for (const Pending& p : pending_) {
    float ms = 0;
    cudaEventElapsedTime(&ms, events_[p.events], events_[p.events + 1]);
    Row& r = launches_[p.op];
    ++r.count;
    r.seconds += ms * 1e-3;
  }
  pending_.clear();
  used_ = 0;
}

void CallProfile::note_sync(const char* op, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  Row& r = syncs_[op];
  ++r.count;
  r.seconds += seconds;
}

void CallProfile::note_copy(const char* direction, size_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  Row& r = copies_[direction];
  ++r.count;
  r.bytes += static_cast<double>(bytes);
}

void CallProfile::note_malloc(size_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++mallocs_.count;
  mallocs_.bytes += static_cast<double>(bytes);
}

void CallProfile::print() {
  std::lock_guard<std::mutex> lock(mutex_);
  resolve_locked();
  double total = 0;
  long count = 0;
  for (const auto& [op, r] : launches_) total += r.seconds, count += r.count;
  std::fprintf(stderr, "cuda profile: %ld launches, %.3f ms device time\n", count, total * 1e3);
  for (const auto& [op, r] : launches_) {
    std::fprintf(stderr, "  launch %-40s %8ld  %9.3f ms  %6.2f us each  %5.1f%%\n", op.c_str(),
                 r.count, r.seconds * 1e3, r.seconds * 1e6 / static_cast<double>(r.count),
                 100.0 * r.seconds / total);
  }
  for (const auto& [op, r] : syncs_)
    std::fprintf(stderr, "  sync   %-40s %8ld  %9.3f ms waited\n", op.c_str(), r.count,
                 r.seconds * 1e3);
  for (const auto& [dir, r] : copies_)
    std::fprintf(stderr, "  copy   %-40s %8ld  %9.0f bytes\n", dir.c_str(), r.count, r.bytes);
  std::fprintf(stderr, "  cudaMalloc %ld calls, %.0f bytes\n", mallocs_.count, mallocs_.bytes);
}

}  // namespace lmx::cuda
