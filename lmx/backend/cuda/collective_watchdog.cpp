#include "lmx/backend/cuda/collective_watchdog.h"

#include <cstdlib>
#include <utility>

namespace lmx::cuda {

namespace {
constexpr std::chrono::milliseconds kPoll{50};
}  // namespace

std::chrono::milliseconds CollectiveWatchdog::configured_timeout() {
  if (const char* v = std::getenv("LMX_TP_TIMEOUT_SECONDS")) {
    char* end = nullptr;
    const double s = std::strtod(v, &end);
    if (end != v && s > 0) return std::chrono::milliseconds(static_cast<int64_t>(s * 1000.0));
  }
  return std::chrono::minutes(10);
}

CollectiveWatchdog::CollectiveWatchdog(std::chrono::milliseconds timeout,
                                       std::function<void(const std::string&)> on_timeout)
    : timeout_(timeout), on_timeout_(std::move(on_timeout)), thread_([this] { run(); }) {}

CollectiveWatchdog::~CollectiveWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  drop_all();
}

void CollectiveWatchdog::queued(int device, cudaStream_t stream, std::string what) {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capture) != cudaSuccess || capture != cudaStreamCaptureStatusNone) return;
  cudaEvent_t event = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < spare_.size(); ++i) {
      if (spare_[i].first == device) {
        event = spare_[i].second;
        spare_.erase(spare_.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
    }
  }
  if (!event && cudaEventCreateWithFlags(&event, cudaEventDisableTiming) != cudaSuccess) {
    cudaGetLastError();
    return;  // untracked: the collective itself is queued already
  }
  if (cudaEventRecord(event, stream) != cudaSuccess) {
    cudaGetLastError();
    cudaEventDestroy(event);
    return;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (fired_) {
    cudaEventDestroy(event);
    return;
  }
  pending_.push_back({device, event, std::chrono::steady_clock::now(), std::move(what)});
}

void CollectiveWatchdog::drop_all() {
  for (const Pending& p : pending_) cudaEventDestroy(p.event);
  pending_.clear();
  for (const auto& [device, event] : spare_) cudaEventDestroy(event);
  spare_.clear();
}

void CollectiveWatchdog::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    wake_.wait_for(lock, kPoll, [&] { return stop_; });
    if (stop_ || fired_) continue;
    const auto now = std::chrono::steady_clock::now();
    std::string late;
    for (size_t i = 0; i < pending_.size();) {
      Pending& p = pending_[i];
      cudaSetDevice(p.device);
      const cudaError_t state = cudaEventQuery(p.event);
      if (state == cudaErrorNotReady) {
        if (late.empty() && now - p.queued > timeout_) {
          const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(now - p.queued).count();
          late = p.what + " has not finished on cuda:" + std::to_string(p.device) + " " +
                 std::to_string(waited / 1000.0) + " s after it was queued (timeout " +
                 std::to_string(timeout_.count() / 1000.0) + " s; LMX_TP_TIMEOUT_SECONDS)";
        }
        ++i;
        continue;
      }
      if (state == cudaSuccess) {
        spare_.emplace_back(p.device, p.event);  // recorded again by a later collective
      } else {
        cudaGetLastError();  // the stream's error reaches its rank
        cudaEventDestroy(p.event);
      }
      pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
    }
    if (!late.empty()) {
      fired_ = true;
      drop_all();
      lock.unlock();
      on_timeout_(late);  // the group's abort: takes its own lock
      lock.lock();
    }
  }
}

}  // namespace lmx::cuda
