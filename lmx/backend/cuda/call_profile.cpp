#include "lmx/backend/cuda/call_profile.h"

#include <cstdio>
#include <cstdlib>

namespace lmx::cuda {

CallProfile* CallProfile::active() {
  // Never destroyed: launches may come from other statics' destructors.
  static CallProfile* profile = [] {
    const char* env = std::getenv("LMX_CUDA_PROFILE");
    if (!env) return static_cast<CallProfile*>(nullptr);
    auto* p = new CallProfile(std::string_view(env) == "shapes");
    std::atexit([] { active()->print(); });
    return p;
  }();
  return profile;
}

CallProfile::CallProfile(bool by_shape) : by_shape_(by_shape) {}

std::string CallProfile::shaped(const char* op, std::initializer_list<std::pair<const char*, int64_t>> sizes) {
  std::string s = op;
  for (const auto& [name, value] : sizes) s += std::string(" ") + name + "=" + std::to_string(value);
  return s;
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

void CallProfile::after_launch(cudaStream_t stream, std::string_view op, double host_seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  cudaEventRecord(events_[used_ + 1], stream);
  pending_.push_back({std::string(op), used_});
  launches_[pending_.back().op].host_seconds += host_seconds;
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

void CallProfile::note_malloc(size_t bytes, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++mallocs_.count;
  mallocs_.seconds += seconds;
  mallocs_.bytes += static_cast<double>(bytes);
}

void CallProfile::note_free(size_t bytes, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++frees_.count;
  frees_.seconds += seconds;
  frees_.bytes += static_cast<double>(bytes);
}

void CallProfile::print() {
  std::lock_guard<std::mutex> lock(mutex_);
  resolve_locked();
  double total = 0, host = 0;
  long count = 0;
  for (const auto& [op, r] : launches_) total += r.seconds, host += r.host_seconds, count += r.count;
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, "cuda profile: %ld launches, %.3f ms device time, %.3f ms host time queuing them, %.3f ms wall\n",
               count, total * 1e3, host * 1e3, wall * 1e3);
  for (const auto& [op, r] : launches_) {
    if (r.count == 0) continue;
    std::fprintf(stderr, "  launch %-40s %8ld  %9.3f ms  %7.2f us each  %5.1f%%  host %6.2f us each\n", op.c_str(),
                 r.count, r.seconds * 1e3, r.seconds * 1e6 / static_cast<double>(r.count),
                 100.0 * r.seconds / total, r.host_seconds * 1e6 / static_cast<double>(r.count));
  }
  for (const auto& [op, r] : syncs_)
    std::fprintf(stderr, "  sync   %-40s %8ld  %9.3f ms waited\n", op.c_str(), r.count,
                 r.seconds * 1e3);
  for (const auto& [dir, r] : copies_)
    std::fprintf(stderr, "  copy   %-40s %8ld  %9.0f bytes\n", dir.c_str(), r.count, r.bytes);
  std::fprintf(stderr, "  cudaMalloc %ld calls, %.0f bytes, %.3f ms host\n", mallocs_.count, mallocs_.bytes,
               mallocs_.seconds * 1e3);
  std::fprintf(stderr, "  cudaFree %ld calls, %.0f bytes, %.3f ms host\n", frees_.count, frees_.bytes, frees_.seconds * 1e3);
}

}  // namespace lmx::cuda
