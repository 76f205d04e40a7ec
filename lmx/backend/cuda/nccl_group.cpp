#include "lmx/backend/cuda/nccl_group.h"

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>

#include <mutex>
#include <set>

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

}  // namespace

struct NcclGroup::Shared {
  std::vector<ncclComm_t> comms;
  std::mutex mutex;
  std::string failure;  // non-empty: aborted
  bool aborted = false;

  void fail(const std::string& reason) {
    std::lock_guard<std::mutex> lock(mutex);
    if (failure.empty()) failure = reason;
    if (!aborted) {
      aborted = true;
      for (ncclComm_t c : comms) nccl().abort(c);  // unblocks the ranks inside a collective
    }
  }
  void throw_if_failed(const char* what) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!failure.empty()) throw Error(std::string("tensor parallel ") + what + ": " + failure);
  }
};

class NcclGroup::Rank : public Communicator {
 public:
  Rank(std::shared_ptr<Shared> shared, int rank, int device) : shared_(std::move(shared)), rank_(rank), device_(device) {}
  int rank() const override { return rank_; }
  int world() const override { return static_cast<int>(shared_->comms.size()); }

  Tensor all_reduce_sum(const Tensor& t) override {
    const Tensor in = checked(t, "all_reduce_sum");
    Tensor out = Tensor::empty(in.shape(), Dtype::f32, in.device());
    if (in.numel() > 0) {
      check(nccl().all_reduce(in.data<float>(), out.data<float>(), static_cast<size_t>(in.numel()), ncclFloat, ncclSum,
                              comm(), stream()),
            "ncclAllReduce");
    }
    return out;
  }

  Tensor all_gather_last(const Tensor& t) override {
    const Tensor in = checked(t, "all_gather_last");
    const int64_t w = world(), c = in.ndim() > 0 ? in.dim(-1) : 1, rows = c > 0 ? in.numel() / c : 0;
    Tensor buf = Tensor::empty({w, rows, c}, Dtype::f32, in.device());  // rank-major
    if (in.numel() > 0) {
      check(nccl().all_gather(in.data<float>(), buf.data<float>(), static_cast<size_t>(in.numel()), ncclFloat, comm(),
                              stream()),
            "ncclAllGather");
    }
    Shape shape = in.shape();
    if (shape.empty()) shape.push_back(1);
    shape.back() = w * c;
    return buf.transpose(0, 1).contiguous().reshape(shape);  // [rows, w, c]
  }

  void abort(const std::string& reason) override {
    shared_->fail("rank " + std::to_string(rank_) + " of " + std::to_string(world()) + " failed: " + reason);
  }

 private:
  Tensor checked(const Tensor& t, const char* what) const {
    shared_->throw_if_failed(what);
    if (t.dtype() != Dtype::f32 || t.device() != Device::cuda(device_)) {
      throw InvalidArgument(std::string("tensor parallel ") + what + ": rank " + std::to_string(rank_) +
                            " takes f32 tensors on cuda:" + std::to_string(device_) + ", got " +
                            std::string(dtype_name(t.dtype())) + " on " + t.device().str());
    }
    return t.contiguous();
  }
  ncclComm_t comm() const { return shared_->comms[static_cast<size_t>(rank_)]; }
  cudaStream_t stream() const { return static_cast<cudaStream_t>(device_stream(device_)); }

  std::shared_ptr<Shared> shared_;
  const int rank_, device_;
};

NcclGroup::NcclGroup(const std::vector<int>& devices) : shared_(std::make_shared<Shared>()) {
  if (devices.empty()) throw InvalidArgument("tensor parallel: an NCCL group needs at least one GPU");
  const int n = device_count();
  std::set<int> seen;
  for (int d : devices) {
    if (d < 0 || d >= n) {
      throw InvalidArgument("tensor parallel: cuda:" + std::to_string(d) + " does not exist (" + std::to_string(n) +
                            " CUDA devices visible)");
    }
    if (!seen.insert(d).second) {
      throw InvalidArgument("tensor parallel: cuda:" + std::to_string(d) + " is named twice (one rank per GPU)");
    }
  }
  for (int d : devices) device_stream(d);  // each device's backend (and stream) made first
  shared_->comms.resize(devices.size());
  check(nccl().init_all(shared_->comms.data(), static_cast<int>(devices.size()), devices.data()), "ncclCommInitAll");
  for (size_t r = 0; r < devices.size(); ++r) {
    ranks_.push_back(std::make_unique<Rank>(shared_, static_cast<int>(r), devices[r]));
  }
}

NcclGroup::~NcclGroup() {
  if (!shared_->aborted) {
    for (ncclComm_t c : shared_->comms) nccl().destroy(c);
  }
}

Communicator& NcclGroup::communicator(int rank) {
  if (rank < 0 || rank >= world()) {
    throw InvalidArgument("tensor parallel: rank " + std::to_string(rank) + " is outside [0, " +
                          std::to_string(world()) + ")");
  }
  return *ranks_[static_cast<size_t>(rank)];
}

}  // namespace lmx::cuda
