#include "lmx/backend/cpu/argmax.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "nn_test_util.h"

namespace lmx::cpu {
namespace {

using testing::available_paths;
using testing::path_name;
using testing::random_vector;
using testing::ScopedCpuPath;

constexpr float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

int64_t reference(const std::vector<float>& x) {
  return std::max_element(x.begin(), x.end()) - x.begin();
}

// std::max_element is the reference: the first maximum, NaNs passed over unless first.
TEST(Argmax, PicksWhatMaxElementPicks) {
  for (CpuTier tier : available_paths()) {
    ScopedCpuPath path(tier);
    uint32_t seed = 5;
    for (int64_t n : {1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1001, 151936}) {
      const auto base = random_vector(static_cast<size_t>(n), seed++, -30.0f, 30.0f);
      std::vector<std::vector<float>> cases = {base};
      // The maximum repeated later (the first wins), at the start, in the tail, at the end.
      for (int64_t at : {int64_t{0}, n / 3, n - 1}) {
        auto x = base;
        x[static_cast<size_t>(at)] = 40.0f;
        x[static_cast<size_t>(n - 1 - at / 2)] = 40.0f;
        cases.push_back(x);
      }
      // NaNs: scattered, first, everywhere but one entry, everywhere.
      auto nans = base;
      for (int64_t i = 1; i < n; i += 5) nans[static_cast<size_t>(i)] = kNaN;
      cases.push_back(nans);
      auto first_nan = base;
      first_nan[0] = kNaN;
      cases.push_back(first_nan);
      std::vector<float> one_value(static_cast<size_t>(n), kNaN);
      one_value[static_cast<size_t>(n / 2)] = -3.0f;
      cases.push_back(one_value);
      cases.push_back(std::vector<float>(static_cast<size_t>(n), kNaN));
      // All -inf, -inf with one finite value, and signed zeros tied at the top.
      cases.push_back(std::vector<float>(static_cast<size_t>(n), -kInf));
      auto masked = std::vector<float>(static_cast<size_t>(n), -kInf);
      masked[static_cast<size_t>(n - 1)] = -1e30f;
      cases.push_back(masked);
      auto zeros = std::vector<float>(static_cast<size_t>(n), -1.0f);
      zeros[static_cast<size_t>(n / 2)] = -0.0f;
      zeros[static_cast<size_t>(n - 1)] = 0.0f;
      cases.push_back(zeros);
      for (size_t c = 0; c < cases.size(); ++c)
        ASSERT_EQ(argmax(cases[c].data(), n), reference(cases[c]))
            << path_name(tier) << " n=" << n << " case " << c;
    }
  }
}

}  // namespace
}  // namespace lmx::cpu
