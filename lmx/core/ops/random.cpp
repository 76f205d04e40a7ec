#include "lmx/core/ops/random.h"

#include <cmath>
#include <limits>
#include <string>

#include "lmx/base/thread_pool.h"
#include "lmx/core/detail/element_access.h"
#include "lmx/base/error.h"

namespace lmx::ops {
namespace {

inline uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

inline double to_unit(uint64_t bits) {  // [0, 1) with 53 random bits
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);
}

template <typename F>
Tensor fill(const Shape& shape, Dtype dtype, F value_at) {
  if (!is_floating(dtype)) {
    throw InvalidArgument("random: dtype must be floating, got " + std::string(dtype_name(dtype)));
  }
  Tensor t = Tensor::empty(shape, dtype);
  void* p = t.raw_data();
  ThreadPool::global().parallel_for(t.numel(), 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) detail::store_from_double(p, dtype, i, value_at(i));
  });
  return t;
}

}  // namespace

uint64_t random_bits(uint64_t seed, uint64_t index) {
  return mix(mix(seed + 0x9e3779b97f4a7c15ull) + index * 0x9e3779b97f4a7c15ull);
}

uint64_t RandomGenerator::next_u64() { return random_bits(seed_, take(1)); }
double RandomGenerator::next_double() { return to_unit(next_u64()); }

Tensor RandomGenerator::uniform(const Shape& shape, float lo, float hi, Dtype dtype) {
  if (!(lo < hi)) {
    throw InvalidArgument("uniform: lower bound " + std::to_string(lo) +
                          " must be below upper bound " + std::to_string(hi));
  }
  const uint64_t base = take(static_cast<uint64_t>(shape_numel(shape)));
  const uint64_t seed = seed_;
  return fill(shape, dtype, [=](int64_t i) {
    return lo + (hi - lo) * to_unit(random_bits(seed, base + static_cast<uint64_t>(i)));
  });
}

Tensor RandomGenerator::normal(const Shape& shape, float mean, float stddev, Dtype dtype) {
  if (!(stddev >= 0)) throw InvalidArgument("normal: stddev must be >= 0");
  const uint64_t n = static_cast<uint64_t>(shape_numel(shape));
  const uint64_t base = take(2 * n);
  const uint64_t seed = seed_;
  return fill(shape, dtype, [=](int64_t i) {
    // Box-Muller on two independent uniforms per element; u1 in (0, 1].
    double u1 = 1.0 - to_unit(random_bits(seed, base + 2 * static_cast<uint64_t>(i)));
    double u2 = to_unit(random_bits(seed, base + 2 * static_cast<uint64_t>(i) + 1));
    double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
    return mean + stddev * z;
  });
}

Tensor RandomGenerator::categorical(const Tensor& logits) {
  if (!logits.defined() || logits.ndim() == 0) {
    throw InvalidArgument("categorical: logits must have at least one dimension");
  }
  const int64_t v = logits.dim(-1);
  if (v == 0) throw InvalidArgument("categorical: empty vocabulary axis");
  Tensor x = logits.contiguous();
  Shape out_shape(logits.shape().begin(), logits.shape().end() - 1);
  Tensor out = Tensor::empty(out_shape, Dtype::i32);
  const int64_t rows = x.numel() / v;
  const uint64_t base = take(static_cast<uint64_t>(rows));
  const void* p = x.raw_data();
  for (int64_t r = 0; r < rows; ++r) {
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < v; ++i) m = std::max(m, detail::load_as_double(p, x.dtype(), r * v + i));
    if (std::isinf(m) && m < 0) {
      throw InvalidArgument("categorical: every logit of row " + std::to_string(r) + " is -inf");
    }
    double total = 0;
    for (int64_t i = 0; i < v; ++i) total += std::exp(detail::load_as_double(p, x.dtype(), r * v + i) - m);
    double target = to_unit(random_bits(seed_, base + static_cast<uint64_t>(r))) * total;
    double acc = 0;
    int64_t pick = -1;
    for (int64_t i = 0; i < v; ++i) {
      double w = std::exp(detail::load_as_double(p, x.dtype(), r * v + i) - m);
      if (w <= 0) continue;
      pick = i;  // last non-zero candidate guards against rounding at the end
      acc += w;
      if (target < acc) break;
    }
    out.data<int32_t>()[r] = static_cast<int32_t>(pick);
  }
  return out;
}

}  // namespace lmx::ops
