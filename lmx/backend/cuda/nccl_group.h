// The GPUs of this process as the ranks of one NCCL group (docs/tensor_parallel.md): rank r
// on cuda:devices[r], its collectives queued on that device's stream (no host wait), tensors
// f32 on the rank's device. NCCL is loaded when a group is made (dlopen of libnccl.so.2),
// so a binary built here runs where NCCL is absent until tensor parallelism is asked for;
// then the error says what is missing. NVLink multicast stays as the environment sets it
// (NCCL_NVLS_ENABLE).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lmx/core/communicator.h"

namespace lmx::cuda {

class NcclGroup {
 public:
  // One rank per entry of `devices` (distinct CUDA device indices).
  explicit NcclGroup(const std::vector<int>& devices);
  ~NcclGroup();
  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;

  int world() const { return static_cast<int>(ranks_.size()); }
  Communicator& communicator(int rank);

  class Rank;

 private:
  struct Shared;
  std::shared_ptr<Shared> shared_;
  std::vector<std::unique_ptr<Rank>> ranks_;
};

}  // namespace lmx::cuda
