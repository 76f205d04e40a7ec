// Persistent worker threads for intra-op parallelism. Decode issues many small
// parallel regions, so hand-off is a spin-then-wait on an atomic epoch rather than
// a condition variable per task. Work is split by (thread index, thread count);
// parallel regions do not nest (a region started from inside one runs inline).
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lmx {

class ThreadPool {
 public:
  // num_threads <= 0: LMX_NUM_THREADS if set, else the number of cores.
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(thread_index, thread_count) once on each of min(max_threads,
  // num_threads()) threads (the caller is thread 0) and returns when all are done.
  // The first exception thrown by any thread is rethrown here.
  void run(const std::function<void(int, int)>& fn, int max_threads = 0);

  // Calls fn(i) for every i in [0, n) on up to max_threads threads (the caller included),
  // each thread taking the next index as it becomes free, and returns when all calls are
  // done. A thread that loses its core only delays the indices it took: a worker that
  // arrives after every index was taken is not waited for, so a busy machine costs less
  // than in run(), where every thread's share waits for that thread.
  void run_dynamic(int64_t n, const std::function<void(int64_t)>& fn, int max_threads = 0);

  // Splits [0, n) into contiguous ranges of at least `grain` items, one per thread,
  // and calls fn(begin, end) for each non-empty range.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // The process-wide pool (created on first use).
  static ThreadPool& global();
  // Recreates the global pool with a new size (not while work is running on it).
  static void set_global_threads(int num_threads);

 private:
  void worker_loop(int index);
  void take_dynamic(const std::function<void(int64_t)>& fn, int64_t n);
  void rethrow_error();

  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one region at a time
  const std::function<void(int, int)>* task_ = nullptr;
  std::atomic<int> active_threads_{0};  // written before the epoch; late workers may read it
  // run_dynamic: the region's function and size, the next index to hand out, the epoch of
  // the open dynamic region (0 when none) and the workers inside it.
  const std::function<void(int64_t)>* dyn_task_ = nullptr;
  int64_t dyn_n_ = 0;
  std::atomic<int64_t> dyn_next_{0};
  std::atomic<uint64_t> dyn_epoch_{0};
  std::atomic<int> dyn_busy_{0};
  std::atomic<uint64_t> fixed_epoch_{0};  // epoch of the current run() region
  std::atomic<uint64_t> epoch_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;
  std::mutex error_mutex_;
};

// Number of threads to use by default: LMX_NUM_THREADS, else hardware concurrency.
int default_num_threads();

}  // namespace lmx
