// Helpers shared by the core tests: random tensors and element-wise comparison.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "lmx/core/tensor.h"

namespace lmx::testing {

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -2.0f, float hi = 2.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

inline Tensor random_tensor(const Shape& shape, uint32_t seed, Dtype dtype = Dtype::f32,
                            float lo = -2.0f, float hi = 2.0f) {
  return Tensor::from_floats(random_floats(static_cast<size_t>(shape_numel(shape)), seed, lo, hi),
                             shape, dtype);
}

// Element (multi-index) of a tensor read through its strides, as double.
inline double at(const Tensor& t, const std::vector<int64_t>& idx) {
  int64_t off = t.offset();
  for (size_t i = 0; i < idx.size(); ++i) off += idx[i] * t.strides()[i];
  Tensor one(t.storage(), {}, {}, off, t.dtype());
  return one.item_as_double();
}

inline void expect_close(const std::vector<float>& got, const std::vector<float>& want,
                         double rel = 1e-5, double abs = 1e-6) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    double tol = abs + rel * std::fabs(want[i]);
    if (std::isnan(want[i])) {
      ASSERT_TRUE(std::isnan(got[i])) << "at " << i;
    } else {
      ASSERT_NEAR(got[i], want[i], tol) << "at " << i;
    }
  }
}

}  // namespace lmx::testing
