#include "lmx/backend/cuda/nccl_group.h"

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>

#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "lmx/backend/cuda/collective_watchdog.h"
#include "lmx/backend/cuda/cuda_backend.h"
#include "lmx/base/error.h"

namespace lmx::cuda {
namespace {

// The NCCL entry points lmx uses, from libnccl.so.2 (loaded once).
struct Nccl {
  decltype(&ncclCommInitAll) init_all = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclAllGather) all_gather = nullptr;
  decltype(&ncclCommDestroy) destroy = nullptr;
  decltype(&ncclCommAbort) abort = nullptr;
  decltype(&ncclGetErrorString) error_string = nullptr;
};

const Nccl& nccl() {
  static const Nccl api = [] {
    Nccl n;
    void* lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      throw Unsupported(std::string("tensor parallel: NCCL (libnccl.so.2) could not be loaded: ") + dlerror() +
                        "; put the library on LD_LIBRARY_PATH");
    }
    auto sym = [&](const char* name) {
      void* p = dlsym(lib, name);
      if (!p) throw Unsupported(std::string("tensor parallel: libnccl.so.2 has no ") + name);
      return p;
    };
    n.init_all = reinterpret_cast<decltype(n.init_all)>(sym("ncclCommInitAll"));
    n.all_reduce = reinterpret_cast<decltype(n.all_reduce)>(sym("ncclAllReduce"));
    n.all_gather = reinterpret_cast<decltype(n.all_gather)>(sym("ncclAllGather"));
    n.destroy = reinterpret_cast<decltype(n.destroy)>(sym("ncclCommDestroy"));
    n.abort = reinterpret_cast<decltype(n.abort)>(sym("ncclCommAbort"));
    n.error_string = reinterpret_cast<decltype(n.error_string)>(sym("ncclGetErrorString"));
    return n;
  }();
  return api;
}

void check(ncclResult_t r, const std::string& what) {
  if (r != ncclSuccess) throw Error("tensor parallel: " + what + ": " + nccl().error_string(r));
}

class NcclCollectives : public DeviceCollectives {
 public:
  explicit NcclCollectives(const std::vector<int>& devices) : devices_(devices) {
    if (devices.empty()) throw InvalidArgument("tensor parallel: an NCCL group needs at least one GPU");
    const int n = device_count();
    std::set<int> seen;
    for (int d : devices) {
      if (d < 0 || d >= n) {
        throw Unsupported("tensor parallel: cuda:" + std::to_string(d) + " does not exist (" + std::to_string(n) +
                              " CUDA devices visible)");
      }
      if (!seen.insert(d).second) {
        throw InvalidArgument("tensor parallel: cuda:" + std::to_string(d) + " is named twice (one rank per GPU)");
      }
    }
    for (int d : devices) device_stream(d);  // each device's backend (and stream) made first
    comms_.resize(devices.size());
    check(nccl().init_all(comms_.data(), static_cast<int>(devices.size()), devices.data()), "ncclCommInitAll");
    watchdog_ = std::make_unique<CollectiveWatchdog>(CollectiveWatchdog::configured_timeout(),
                                                     [this](const std::string& reason) { abort(reason); });
  }
  ~NcclCollectives() override {
    watchdog_.reset();  // its thread may call abort(): stopped first
    if (!aborted_) {
      for (ncclComm_t c : comms_) nccl().destroy(c);
    }
  }

  int world() const override { return static_cast<int>(comms_.size()); }
  Device device(int rank) const override { return Device::cuda(devices_.at(static_cast<size_t>(rank))); }

  void all_reduce_sum(int rank, const float* in, float* out, size_t n) override {
    use_device(rank);
    check(nccl().all_reduce(in, out, n, ncclFloat, ncclSum, comm(rank), stream(rank)), "ncclAllReduce");
    watch(rank, "ncclAllReduce");
  }
  void all_gather(int rank, const float* in, float* out, size_t n) override {
    use_device(rank);
    check(nccl().all_gather(in, out, n, ncclFloat, comm(rank), stream(rank)), "ncclAllGather");
    watch(rank, "ncclAllGather");
  }

  void abort(const std::string& reason) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failure_.empty()) failure_ = reason;
    if (!aborted_) {
      aborted_ = true;
      for (ncclComm_t c : comms_) nccl().abort(c);  // unblocks the ranks inside a collective
    }
  }
  void throw_if_failed(const char* what) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!failure_.empty()) throw Error(std::string("tensor parallel ") + what + ": " + failure_);
  }

 private:
  // The calling rank's thread on its GPU (the thread may have run another device's work).
  void use_device(int rank) const {
    const int d = devices_.at(static_cast<size_t>(rank));
    if (cudaSetDevice(d) != cudaSuccess) throw Error("tensor parallel: cudaSetDevice(" + std::to_string(d) + ") failed");
  }
  void watch(int rank, const char* op) {
    watchdog_->queued(devices_.at(static_cast<size_t>(rank)), stream(rank),
                      "rank " + std::to_string(rank) + "'s " + op);
  }
  ncclComm_t comm(int rank) const { return comms_.at(static_cast<size_t>(rank)); }
  cudaStream_t stream(int rank) const {
    return static_cast<cudaStream_t>(device_stream(devices_.at(static_cast<size_t>(rank))));
  }

  const std::vector<int> devices_;
  std::vector<ncclComm_t> comms_;
  std::mutex mutex_;
  std::string failure_;  // non-empty: aborted
  bool aborted_ = false;
  std::unique_ptr<CollectiveWatchdog> watchdog_;  // the collectives' timeout
};

}  // namespace

std::unique_ptr<DeviceCollectives> make_nccl_collectives(const std::vector<int>& devices) {
  return std::make_unique<NcclCollectives>(devices);
}

}  // namespace lmx::cuda
