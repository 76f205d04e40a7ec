#include "lmx/base/thread_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

namespace lmx {
namespace {

thread_local bool t_inside_region = false;

// Spin for roughly this long before sleeping on the atomic: long enough to catch the
// next region of a decode step, short enough not to burn a core when idle.
constexpr int kSpinIterations = 20000;
// A worker spins this many iterations (~160 us of `pause` on Zen 3) before it starts to
// yield: the serial work between two regions of a decode step fits in it, and a yield there
// hands the core to any runnable process, however low its priority (~20 us a yield on
// average with nice-19 builds running, at times a whole slice). LFM2-1.2B 4-bit decode, 2
// threads, load 9-10 of nice-19 compiles on 2 cores, same window: 23-26 tok/s yielding
// every 64 spins from the start, 37-42 yielding after 8192 (2048: 25-33, no gain).
constexpr int kSpinBeforeYield = 8192;

// The spin-wait hint (pause / yield), so a spinning thread leaves its core's other
// hardware thread the pipeline.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

// The caller's wait for its workers: spin briefly (the common case: workers finish within
// microseconds), then yield so a descheduled worker gets the core back when the machine
// is oversubscribed.
void wait_until_zero(const std::atomic<int>& count, std::memory_order order) {
  for (int spin = 0; count.load(order) != 0; ++spin) {
    if (spin < kSpinIterations) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

std::unique_ptr<ThreadPool>& global_slot() {
  static std::unique_ptr<ThreadPool> pool;
  return pool;
}
std::mutex& global_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

int default_num_threads() {
  if (const char* env = std::getenv("LMX_NUM_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v > 0 && v <= 1024) return static_cast<int>(v);
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

ThreadPool::ThreadPool(int num_threads)
    : num_threads_(num_threads > 0 ? num_threads : default_num_threads()) {
  workers_.reserve(static_cast<size_t>(num_threads_ - 1));
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  epoch_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int index) {
  // A waiting worker that yields hands its core to whatever else is runnable, a nice-19
  // build included, and may get it back only a time slice later, after the region it waits
  // for has begun. So a worker yields early only in a pool with more threads than processors,
  // where the thread it waits for may need the core (2 threads on 2 loaded cores, yielding
  // from the start -> not before kSpinBeforeYield: lmx embed 1.27 -> 1.58 cores busy, 0.83x
  // the wall time; LFM2 decode above).
  const unsigned cores = std::thread::hardware_concurrency();
  const bool oversubscribed = cores != 0 && static_cast<unsigned>(num_threads_) > cores;
  uint64_t seen = 0;
  for (;;) {
    uint64_t e = epoch_.load(std::memory_order_acquire);
    for (int spin = 0; e == seen && spin < kSpinIterations; ++spin) {
      // Oversubscribed, the thread this one waits for may need the core: yield from the
      // start. Otherwise only past the usual gap between two regions (see kSpinBeforeYield).
      if ((oversubscribed || spin >= kSpinBeforeYield) && spin % 64 == 63) std::this_thread::yield();
      cpu_relax();
      e = epoch_.load(std::memory_order_acquire);
    }
    if (e == seen) {
      epoch_.wait(seen, std::memory_order_acquire);
      continue;
    }
    seen = e;
    if (stop_.load(std::memory_order_acquire)) return;
    const int active = active_threads_.load(std::memory_order_relaxed);
    if (index >= active) continue;
    // A dynamic region may be over by now (the caller does not wait for late workers):
    // join it only if it is still open, counted in dyn_busy_ so that the caller waits for
    // this worker before the region's function goes away.
    dyn_busy_.fetch_add(1, std::memory_order_seq_cst);
    if (dyn_epoch_.load(std::memory_order_seq_cst) == e) take_dynamic(*dyn_task_, dyn_n_);
    dyn_busy_.fetch_sub(1, std::memory_order_seq_cst);
    // A run() region waits for every worker, so it is still current if it was e.
    if (fixed_epoch_.load(std::memory_order_acquire) == e) {
      t_inside_region = true;
      try {
        (*task_)(index, active);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
      }
      t_inside_region = false;
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

void ThreadPool::take_dynamic(const std::function<void(int64_t)>& fn, int64_t n) {
  t_inside_region = true;
  for (int64_t i = dyn_next_.fetch_add(1, std::memory_order_relaxed); i < n;
       i = dyn_next_.fetch_add(1, std::memory_order_relaxed)) {
    try {
      fn(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
  t_inside_region = false;
}

void ThreadPool::rethrow_error() {
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

void ThreadPool::run_dynamic(int64_t n, const std::function<void(int64_t)>& fn, int max_threads) {
  if (n <= 0) return;
  int threads = num_threads_;
  if (max_threads > 0) threads = std::min(threads, max_threads);
  if (threads <= 1 || n == 1 || t_inside_region) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::lock_guard<std::mutex> region(run_mutex_);
  dyn_task_ = &fn;
  dyn_n_ = n;
  active_threads_.store(static_cast<int>(std::min<int64_t>(threads, n)), std::memory_order_relaxed);
  error_ = nullptr;
  dyn_next_.store(0, std::memory_order_relaxed);
  const uint64_t e = epoch_.load(std::memory_order_relaxed) + 1;
  dyn_epoch_.store(e, std::memory_order_seq_cst);
  epoch_.store(e, std::memory_order_seq_cst);
  epoch_.notify_all();
  take_dynamic(fn, n);
  // Every index is taken: close the region, then wait only for workers inside it.
  dyn_epoch_.store(0, std::memory_order_seq_cst);
  wait_until_zero(dyn_busy_, std::memory_order_seq_cst);
  dyn_task_ = nullptr;
  rethrow_error();
}

void ThreadPool::run(const std::function<void(int, int)>& fn, int max_threads) {
  int n = num_threads_;
  if (max_threads > 0) n = std::min(n, max_threads);
  if (n <= 1 || t_inside_region) {
    fn(0, 1);
    return;
  }
  std::lock_guard<std::mutex> region(run_mutex_);
  task_ = &fn;
  active_threads_.store(n, std::memory_order_relaxed);
  error_ = nullptr;
  pending_.store(n - 1, std::memory_order_release);
  const uint64_t e = epoch_.load(std::memory_order_relaxed) + 1;
  fixed_epoch_.store(e, std::memory_order_release);
  epoch_.store(e, std::memory_order_seq_cst);
  epoch_.notify_all();
  t_inside_region = true;
  try {
    fn(0, n);
  } catch (...) {
    std::lock_guard<std::mutex> lock(error_mutex_);
    if (!error_) error_ = std::current_exception();
  }
  t_inside_region = false;
  wait_until_zero(pending_, std::memory_order_acquire);
  task_ = nullptr;
  rethrow_error();
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t max_chunks = (n + grain - 1) / grain;
  int threads = static_cast<int>(std::min<int64_t>(num_threads_, max_chunks));
  if (threads <= 1) {
    fn(0, n);
    return;
  }
  run(
      [&](int t, int nt) {
        int64_t begin = n * t / nt, end = n * (t + 1) / nt;
        if (begin < end) fn(begin, end);
      },
      threads);
}

ThreadPool& ThreadPool::global() {
  std::lock_guard<std::mutex> lock(global_mutex());
  auto& slot = global_slot();
  if (!slot) slot = std::make_unique<ThreadPool>();
  return *slot;
}

void ThreadPool::set_global_threads(int num_threads) {
  std::lock_guard<std::mutex> lock(global_mutex());
  global_slot() = std::make_unique<ThreadPool>(num_threads);
}

}  // namespace lmx
