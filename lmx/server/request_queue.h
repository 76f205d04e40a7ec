// Admission for requests that need the model: one runs, at most max_waiting wait behind
// it; beyond that try_enter() refuses (the server answers 503 with Retry-After).
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>

namespace lmx::server {

class RequestQueue {
 public:
  explicit RequestQueue(size_t max_waiting) : capacity_(max_waiting + 1) {}

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
