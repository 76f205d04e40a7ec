// Admission for requests that need the model: up to max_running run (the batch
// scheduler's rows), at most max_waiting wait behind them; beyond that try_enter()
// refuses (the server answers 503 with Retry-After).
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>

namespace lmx::server {

class RequestQueue {
 public:
  RequestQueue(size_t max_running, size_t max_waiting) : capacity_(max_running + max_waiting) {}

  // Held while a request runs or waits; leaving frees the place.
  class Place {
   public:
    explicit Place(RequestQueue& q) : queue_(q) {}
    ~Place();
    Place(const Place&) = delete;
    Place& operator=(const Place&) = delete;

   private:
    RequestQueue& queue_;
  };

  // A place, or null when the queue is full.
  std::unique_ptr<Place> try_enter();
  size_t in_flight() const;

 private:
  mutable std::mutex mutex_;
  size_t capacity_;
  size_t in_flight_ = 0;
};

}  // namespace lmx::server
