#include "lmx/core/communicator.h"

#include <exception>
#include <functional>
#include <thread>

#include "lmx/base/error.h"
#include "lmx/core/ops/shape.h"

namespace lmx {
namespace {

void check_rank(int rank, int world) {
  if (rank < 0 || rank >= world) {
    throw InvalidArgument("tensor parallel: rank " + std::to_string(rank) + " is outside [0, " +
                          std::to_string(world) + ")");
  }
}

}  // namespace

std::vector<Tensor> run_on_ranks(const std::vector<Communicator*>& comms, const std::function<Tensor(int)>& fn) {
  const size_t world = comms.size();
  std::vector<Tensor> out(world);
  std::vector<std::exception_ptr> errors(world);
  std::vector<std::thread> threads;
  for (size_t r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        out[r] = fn(static_cast<int>(r));
      } catch (const std::exception& e) {
        errors[r] = std::current_exception();
        comms[r]->abort(e.what());
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  return out;
}

class DeviceGroup::Rank : public Communicator {
 public:
  Rank(DeviceCollectives& c, int rank) : c_(c), rank_(rank) {}
  int rank() const override { return rank_; }
  int world() const override { return c_.world(); }

  Tensor all_reduce_sum(const Tensor& t) override {
    const Tensor in = checked(t, "all_reduce_sum");
    Tensor out = Tensor::empty(in.shape(), Dtype::f32, in.device());
    if (in.numel() > 0) c_.all_reduce_sum(rank_, in.data<float>(), out.data<float>(), static_cast<size_t>(in.numel()));
    return out;
  }

  Tensor all_gather_last(const Tensor& t) override {
    const Tensor in = checked(t, "all_gather_last");
    const int64_t w = world(), c = in.ndim() > 0 ? in.dim(-1) : 1, rows = c > 0 ? in.numel() / c : 0;
    Tensor buf = Tensor::empty({w, rows, c}, Dtype::f32, in.device());  // rank-major
    if (in.numel() > 0) c_.all_gather(rank_, in.data<float>(), buf.data<float>(), static_cast<size_t>(in.numel()));
    Shape shape = in.shape();
    if (shape.empty()) shape.push_back(1);
    shape.back() = w * c;
    return buf.transpose(0, 1).contiguous().reshape(shape);  // [rows, w, c]
  }

  void abort(const std::string& reason) override {
    c_.abort("rank " + std::to_string(rank_) + " of " + std::to_string(world()) + " failed: " + reason);
  }

 private:
  Tensor checked(const Tensor& t, const char* what) const {
    c_.throw_if_failed(what);
    const Device d = c_.device(rank_);
    if (t.dtype() != Dtype::f32 || t.device() != d) {
      throw InvalidArgument(std::string("tensor parallel ") + what + ": rank " + std::to_string(rank_) +
                            " takes f32 tensors on " + d.str() + ", got " + std::string(dtype_name(t.dtype())) +
                            " on " + t.device().str());
    }
    return t.contiguous();
  }

  DeviceCollectives& c_;
  const int rank_;
};

DeviceGroup::DeviceGroup(const std::vector<Device>& devices) {
  if (devices.empty()) throw InvalidArgument("tensor parallel: a device group needs at least one device");
  std::vector<int> indices;
  for (const Device& d : devices) {
    if (d.type != devices.front().type) {
      throw InvalidArgument("tensor parallel: a device group of " + devices.front().str() + " and " + d.str() +
                            " (one device type)");
    }
    indices.push_back(d.index);
  }
  collectives_ = backend_for(devices.front()).make_collectives(indices);
  for (int r = 0; r < static_cast<int>(devices.size()); ++r) ranks_.push_back(std::make_unique<Rank>(*collectives_, r));
}

// The ranks refer to the collectives: they go first.
DeviceGroup::~DeviceGroup() { ranks_.clear(); }

Communicator& DeviceGroup::communicator(int rank) {
  check_rank(rank, world());
  return *ranks_[static_cast<size_t>(rank)];
}

class ThreadGroup::Rank : public Communicator {
 public:
  Rank(ThreadGroup& group, int rank) : group_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int world() const override { return group_.world_; }

  Tensor all_reduce_sum(const Tensor& t) override {
    const std::vector<Tensor> all = group_.exchange(rank_, t, "all_reduce_sum");
    Tensor out = Tensor::empty(t.shape(), Dtype::f32);
    float* o = out.data<float>();
    const int64_t n = t.numel();
    const float* first = all[0].data<float>();
    for (int64_t i = 0; i < n; ++i) o[i] = first[i];
    for (size_t r = 1; r < all.size(); ++r) {
      const float* p = all[r].data<float>();
      for (int64_t i = 0; i < n; ++i) o[i] += p[i];
    }
    return out;
  }

  Tensor all_gather_last(const Tensor& t) override {
    const std::vector<Tensor> all = group_.exchange(rank_, t, "all_gather_last");
    return ops::concat(all, static_cast<int>(t.ndim()) - 1);
  }

  void abort(const std::string& reason) override {
    group_.fail("rank " + std::to_string(rank_) + " of " + std::to_string(group_.world_) + " failed: " + reason);
  }

 private:
  ThreadGroup& group_;
  const int rank_;
};

ThreadGroup::ThreadGroup(int world, std::chrono::milliseconds timeout) : world_(world), timeout_(timeout) {
  if (world < 1) throw InvalidArgument("tensor parallel: a group needs at least one rank, got " + std::to_string(world));
  for (int r = 0; r < world; ++r) ranks_.push_back(std::make_unique<Rank>(*this, r));
  slots_.resize(static_cast<size_t>(world));
}

ThreadGroup::~ThreadGroup() = default;

Communicator& ThreadGroup::communicator(int rank) {
  check_rank(rank, world_);
  return *ranks_[static_cast<size_t>(rank)];
}

void ThreadGroup::fail(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (failure_.empty()) failure_ = reason;
  cv_.notify_all();
}

void ThreadGroup::wait_for(std::unique_lock<std::mutex>& lock, const std::function<bool()>& done, int rank,
                           const char* what) {
  const bool ok = cv_.wait_for(lock, timeout_, [&] { return done() || !failure_.empty(); });
  if (!failure_.empty()) throw Error(std::string("tensor parallel ") + what + ": " + failure_);
  if (!ok) {
    failure_ = "rank " + std::to_string(rank) + " waited " + std::to_string(timeout_.count()) +
               " ms in " + what + " for the other ranks";
    cv_.notify_all();
    throw Error("tensor parallel " + std::string(what) + ": " + failure_);
  }
}

std::vector<Tensor> ThreadGroup::exchange(int rank, const Tensor& t, const char* what) {
  if (!t.device().is_cpu() || t.dtype() != Dtype::f32) {
    throw InvalidArgument(std::string("tensor parallel ") + what + ": the thread group takes f32 tensors on the CPU, got " +
                          std::string(dtype_name(t.dtype())) + " on " + t.device().str());
  }
  Tensor mine = t.contiguous();
  std::unique_lock<std::mutex> lock(mutex_);
  if (!failure_.empty()) throw Error(std::string("tensor parallel ") + what + ": " + failure_);
  const uint64_t gen = generation_;
  slots_[static_cast<size_t>(rank)] = mine;
  if (++arrived_ == world_) {
    departed_ = 0;
    ++generation_;
    cv_.notify_all();
  } else {
    wait_for(lock, [&] { return generation_ != gen; }, rank, what);
  }
  std::vector<Tensor> all = slots_;
  for (const Tensor& s : all) {
    if (s.shape() != mine.shape()) {
      failure_ = std::string(what) + " got tensors of shapes " + shape_str(all[0].shape()) + " and " +
                 shape_str(s.shape()) + " from the ranks";
      cv_.notify_all();
      throw Error(std::string("tensor parallel ") + what + ": " + failure_);
    }
  }
  // The slots are cleared, and the next collective may start, once every rank has taken
  // its copy of them.
  const uint64_t released = released_;
  if (++departed_ == world_) {
    arrived_ = 0;
    ++released_;
    for (Tensor& s : slots_) s = Tensor();
    cv_.notify_all();
  } else {
    wait_for(lock, [&] { return released_ != released; }, rank, what);
  }
  return all;
}

}  // namespace lmx
