// Collective operations among the ranks of a tensor-parallel group (docs/tensor_parallel.md):
// each rank holds a shard of a model; after a row-parallel projection the ranks' partial
// sums are added (all_reduce_sum), and the slices of a vocabulary-parallel head are joined
// (all_gather_last). Implementations: ThreadGroup below (the ranks are threads of one
// process, tensors on the CPU: what the sharding is checked against on any machine) and
// NCCL (lmx/backend/cuda, one GPU a rank).
//
// A rank that fails calls abort(): every rank waiting in a collective, or entering one
// later, gets an Error naming the failed rank instead of waiting forever; a collective
// that waits longer than the group's timeout fails the same way.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lmx/core/backend.h"
#include "lmx/core/tensor.h"

namespace lmx {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  // Every rank passes an f32 tensor of one shape; each gets the element-wise sum (the
  // ranks' tensors added in rank order, so every rank holds the same values).
  virtual Tensor all_reduce_sum(const Tensor& t) = 0;
  // Every rank passes an f32 tensor of one shape; each gets them concatenated along the
  // last axis, rank 0's first.
  virtual Tensor all_gather_last(const Tensor& t) = 0;
  // This rank failed: the others stop with an error that quotes `reason`.
  virtual void abort(const std::string& reason) = 0;
};

// The ranks of one group, each with its communicator: ThreadGroup and DeviceGroup below.
class CommunicatorGroup {
 public:
  virtual ~CommunicatorGroup() = default;
  virtual int world() const = 0;
  virtual Communicator& communicator(int rank) = 0;
};

// fn(rank) for every communicator of a group, each on a thread of its own (the ranks'
// collectives need them to run at once); returns each rank's result. A rank that throws
// aborts the group (the others' collectives then fail too) and, once every thread is done,
// the lowest rank's error is rethrown.
std::vector<Tensor> run_on_ranks(const std::vector<Communicator*>& comms, const std::function<Tensor(int)>& fn);

// Ranks on devices of one backend (one GPU a rank), with the backend's collectives
// (Backend::make_collectives: NCCL on CUDA). Each rank's tensors are f32 on its device.
class DeviceGroup : public CommunicatorGroup {
 public:
  // `devices`: distinct devices of one type, rank r on devices[r].
  explicit DeviceGroup(const std::vector<Device>& devices);
  ~DeviceGroup() override;
  DeviceGroup(const DeviceGroup&) = delete;
  DeviceGroup& operator=(const DeviceGroup&) = delete;

  int world() const override { return static_cast<int>(ranks_.size()); }
  Communicator& communicator(int rank) override;

 private:
  class Rank;
  std::unique_ptr<DeviceCollectives> collectives_;
  std::vector<std::unique_ptr<Rank>> ranks_;
};

// `world` ranks as threads of one process, each using communicator(rank) from its own
// thread. Tensors must be on the CPU.
class ThreadGroup : public CommunicatorGroup {
 public:
  explicit ThreadGroup(int world, std::chrono::milliseconds timeout = std::chrono::minutes(10));
  ~ThreadGroup() override;
  ThreadGroup(const ThreadGroup&) = delete;
  ThreadGroup& operator=(const ThreadGroup&) = delete;

  int world() const override { return world_; }
  Communicator& communicator(int rank) override;

 private:
  class Rank;
  friend class Rank;
  // Every rank's tensor once all have arrived (throws once the group was aborted or the
  // wait timed out); then waits until every rank has read them.
  std::vector<Tensor> exchange(int rank, const Tensor& t, const char* what);
  void wait_for(std::unique_lock<std::mutex>& lock, const std::function<bool()>& done, int rank, const char* what);
  void fail(const std::string& reason);

  const int world_;
  const std::chrono::milliseconds timeout_;
  std::vector<std::unique_ptr<Rank>> ranks_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Tensor> slots_;
  int arrived_ = 0, departed_ = 0;
  uint64_t generation_ = 0, released_ = 0;
  std::string failure_;  // non-empty: aborted
};

}  // namespace lmx
