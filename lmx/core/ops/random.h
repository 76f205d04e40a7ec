// Seeded random numbers that do not depend on the thread count: element i of a draw
// is a pure function of (seed, draw counter, i) (a counter-based generator), so the
// same seed gives the same tensors whether one thread or many fill them.
#pragma once

#include <cstdint>

#include "lmx/core/tensor.h"

namespace lmx::ops {

class RandomGenerator {
 public:
  explicit RandomGenerator(uint64_t seed = 0) : seed_(seed) {}

  uint64_t seed() const { return seed_; }
  // Uniform in [lo, hi).
  Tensor uniform(const Shape& shape, float lo = 0.0f, float hi = 1.0f, Dtype dtype = Dtype::f32);
  // Normal with the given mean and standard deviation (Box-Muller).
  Tensor normal(const Shape& shape, float mean = 0.0f, float stddev = 1.0f,
                Dtype dtype = Dtype::f32);
  // One sample per row of `logits` [..., vocab] from softmax(logits / 1) (inverse CDF
  // in double precision); -inf logits are never drawn. Result i32 of shape [...].
  Tensor categorical(const Tensor& logits);
  // The next raw 64-bit value and uniform double in [0, 1) (advance the counter by one).
  uint64_t next_u64();
  double next_double();

  // Advance state: each draw uses fresh counters.
  uint64_t counter() const { return counter_; }

 private:
  uint64_t take(uint64_t n) {
    uint64_t c = counter_;
    counter_ += n;
    return c;
  }
  uint64_t seed_;
  uint64_t counter_ = 0;
};

// The value of element `index` of the stream (seed, counter): splitmix64-style mixing.
uint64_t random_bits(uint64_t seed, uint64_t index);

}  // namespace lmx::ops
