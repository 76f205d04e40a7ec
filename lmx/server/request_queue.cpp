#include "lmx/server/request_queue.h"

namespace lmx::server {

RequestQueue::Place::~Place() {
  std::lock_guard<std::mutex> lock(queue_.mutex_);
  --queue_.in_flight_;
}

std::unique_ptr<RequestQueue::Place> RequestQueue::try_enter() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (in_flight_ >= capacity_) return nullptr;
  ++in_flight_;
  return std::make_unique<Place>(*this);
}

size_t RequestQueue::in_flight() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return in_flight_;
}

}  // namespace lmx::server
