#include "lmx/base/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <vector>

namespace lmx {
namespace {

TEST(ThreadPool, EveryThreadRunsOnceWithItsIndex) {
  ThreadPool pool(4);
  for (int rep = 0; rep < 200; ++rep) {
    std::vector<std::atomic<int>> hits(4);
    pool.run([&](int t, int n) {
      EXPECT_EQ(n, 4);
      hits[static_cast<size_t>(t)]++;
    });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  }
}

TEST(ThreadPool, ParallelForCoversRangeExactlyOnce) {
  ThreadPool pool(3);
  for (int64_t n : {1, 2, 3, 7, 100, 1001}) {
    std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
    pool.parallel_for(n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)]++;
    });
    for (auto& s : seen) ASSERT_EQ(s.load(), 1);
  }
}

TEST(ThreadPool, ExceptionOnWorkerReachesCaller) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.run([](int t, int) {
    if (t == 1) throw std::runtime_error("boom");
  }),
               std::runtime_error);
  // The pool still works afterwards.
  std::atomic<int> count{0};
  pool.run([&](int, int) { count++; });
  EXPECT_EQ(count.load(), 2);
}

TEST(ThreadPool, RunDynamicCoversRangeExactlyOnceBetweenFixedRegions) {
  ThreadPool pool(3);
  for (int rep = 0; rep < 300; ++rep) {
    const int64_t n = 1 + rep % 37;
    std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
    pool.run_dynamic(n, [&](int64_t i) { seen[static_cast<size_t>(i)]++; });
    for (auto& s : seen) ASSERT_EQ(s.load(), 1);
    // Workers that come late to a dynamic region must not run the next region twice.
    std::vector<std::atomic<int>> hits(3);
    pool.run([&](int t, int) { hits[static_cast<size_t>(t)]++; });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  }
}

TEST(ThreadPool, RunDynamicRethrowsAndWaitsForSlowIndices) {
  ThreadPool pool(2);
  std::atomic<int> done{0};
  EXPECT_THROW(pool.run_dynamic(8,
                                [&](int64_t i) {
                                  if (i == 3) throw std::runtime_error("boom");
                                  std::this_thread::sleep_for(std::chrono::microseconds(200));
                                  done++;
                                }),
               std::runtime_error);
  EXPECT_EQ(done.load(), 7);  // every other index ran before the call returned
}

TEST(ThreadPool, NestedRegionRunsInline) {
  ThreadPool pool(2);
  std::atomic<int> inner{0};
  pool.run([&](int, int) {
    pool.run([&](int t, int n) {
      EXPECT_EQ(t, 0);
      EXPECT_EQ(n, 1);
      inner++;
    });
  });
  EXPECT_EQ(inner.load(), 2);
}

TEST(ThreadPool, SumMatchesSerial) {
  ThreadPool pool(2);
  std::vector<double> v(100000);
  std::iota(v.begin(), v.end(), 1.0);
  std::vector<double> partial(2, 0.0);
  pool.run([&](int t, int n) {
    size_t b = v.size() * static_cast<size_t>(t) / static_cast<size_t>(n);
    size_t e = v.size() * static_cast<size_t>(t + 1) / static_cast<size_t>(n);
    for (size_t i = b; i < e; ++i) partial[static_cast<size_t>(t)] += v[i];
  });
  EXPECT_DOUBLE_EQ(partial[0] + partial[1], 100000.0 * 100001.0 / 2.0);
}

}  // namespace
}  // namespace lmx
