// The CUDA backend: a caching device allocator, copies, the wired-memory pool and the
// kernels of the backend table, all queued on one stream per device. Nothing waits for
// the device except what returns values to the host (copies to the host, argmax).
#include "lmx/backend/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "lmx/backend/cuda/attention_kernels.h"
#include "lmx/backend/cuda/call_profile.h"
#include "lmx/backend/cuda/cublas_gemm.h"
#include "lmx/backend/cuda/cuda_wired.h"
#include "lmx/backend/cuda/decode_attention.h"
#include "lmx/backend/cuda/elementwise_kernels.h"
#include "lmx/backend/cuda/fused_kernels.h"
#include "lmx/backend/cuda/host_staging.h"
#include "lmx/backend/cuda/flash_attention.h"
#include "lmx/backend/cuda/matmul_kernels.h"
#include "lmx/backend/cuda/matvec_kernels.h"
#include "lmx/backend/cuda/nccl_group.h"
#include "lmx/backend/cuda/nn_kernels.h"
#include "lmx/backend/cuda/quant_gemm_few.h"
#include "lmx/backend/cuda/optimizer_kernels.h"
#include "lmx/backend/cuda/scan_kernels.h"
#include "lmx/backend/cuda/thin_gemm.h"
#include "lmx/base/env_switch.h"
#include "lmx/base/error.h"
#include "lmx/core/backend.h"
#include "lmx/core/caching_allocator.h"
#include "lmx/core/device_graph.h"
#include "lmx/core/step_values.h"

namespace lmx::cuda {
namespace {

static_assert(static_cast<int>(Dtype::f32) == detail::kF32 && static_cast<int>(Dtype::f16) == detail::kF16 &&
              static_cast<int>(Dtype::bf16) == detail::kBF16 && static_cast<int>(Dtype::i32) == detail::kI32 &&
              static_cast<int>(Dtype::i64) == detail::kI64 && static_cast<int>(Dtype::u8) == detail::kU8 &&
              static_cast<int>(Dtype::u32) == detail::kU32 && static_cast<int>(Dtype::boolean) == detail::kBool);
static_assert(kernels::kMaxRank == detail::kMaxRank);
static_assert(static_cast<int>(QuantMode::mxfp4) == 1 && static_cast<int>(QuantMode::mxfp8) == 2 &&
              static_cast<int>(QuantMode::nvfp4) == 3);

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("cuda: ") + what + ": " + cudaGetErrorString(e));
}

int code(Dtype d) { return static_cast<int>(d); }

size_t round_size(size_t bytes) {
  constexpr size_t kGranule = 512;
  if (bytes < (size_t{1} << 20)) return (bytes + kGranule - 1) / kGranule * kGranule;
  constexpr size_t kLarge = size_t{2} << 20;
  return (bytes + kLarge - 1) / kLarge * kLarge;
}

size_t total_device_memory(int index) {
  size_t free_b = 0, total = 0;
  check(cudaSetDevice(index), "cudaSetDevice");
  check(cudaMemGetInfo(&free_b, &total), "cudaMemGetInfo");
  return total;
}

// Caching allocator over cudaMalloc: freed blocks are kept per size for reuse, since
// cudaMalloc/cudaFree synchronize the device and cost far more than a decode step's
// work. A block freed while kernels that use it are queued is safe to hand out again:
// every kernel runs on the device's one stream, in order.
//
// While a graph is captured, the capturing thread's allocations come from the graph's
// pool: blocks it frees go back to the pool (reused within the capture, in stream order)
// and none of them serves anyone else while the graph lives, since a replay writes them
// again. Dropping the pool returns its free blocks to the cache; blocks still held (the
// step's output) return there when their tensor goes.
struct GraphPool {
  std::map<size_t, std::vector<void*>> free;
  std::vector<void*> blocks;
};

class CudaAllocator final : public CachingAllocator {
 public:
  explicit CudaAllocator(int index) : CachingAllocator(total_device_memory(index) / 4), index_(index) {}
  ~CudaAllocator() override { release_all(); }
  Device device() const override { return Device::cuda(index_); }

  void* allocate(size_t bytes) override {
    if (pools_live_.load(std::memory_order_acquire) > 0) {
      std::lock_guard<std::mutex> lock(pool_mutex_);
      if (capture_ && std::this_thread::get_id() == capture_thread_) {
        auto& list = capture_->free[round_size(std::max<size_t>(bytes, 1))];
        if (!list.empty()) {
          void* p = list.back();
          list.pop_back();
          return p;
        }
        void* p = CachingAllocator::allocate(bytes);
        owner_[p] = capture_;
        capture_->blocks.push_back(p);
        return p;
      }
    }
    return CachingAllocator::allocate(bytes);
  }
  void deallocate(void* ptr, size_t bytes) override {
    if (ptr && pools_live_.load(std::memory_order_acquire) > 0) {
      std::lock_guard<std::mutex> lock(pool_mutex_);
      auto it = owner_.find(ptr);
      if (it != owner_.end()) {
        it->second->free[round_size(std::max<size_t>(bytes, 1))].push_back(ptr);
        return;
      }
    }
    CachingAllocator::deallocate(ptr, bytes);
  }
  // The capturing thread allocates from `pool` until end_capture().
  void begin_capture(GraphPool* pool) {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    capture_ = pool;
    capture_thread_ = std::this_thread::get_id();
    pools_live_.fetch_add(1, std::memory_order_acq_rel);
  }
  void end_capture() {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    capture_ = nullptr;
  }
  void release_pool(GraphPool& pool) {
    std::vector<std::pair<void*, size_t>> back;
    {
      std::lock_guard<std::mutex> lock(pool_mutex_);
      for (auto& [size, list] : pool.free)
        for (void* p : list) back.emplace_back(p, size);
      for (void* p : pool.blocks) owner_.erase(p);
      pool.free.clear();
      pool.blocks.clear();
      pools_live_.fetch_sub(1, std::memory_order_acq_rel);
    }
    for (auto& [p, size] : back) CachingAllocator::deallocate(p, size);
  }

 private:
  size_t bucket_size(size_t bytes) const override { return round_size(bytes); }
  void* system_allocate(size_t size) override {
    check(cudaSetDevice(index_), "cudaSetDevice");
    void* p = nullptr;
    const auto t0 = std::chrono::steady_clock::now();
    const cudaError_t e = cudaMalloc(&p, size);
    if (CallProfile* profile = CallProfile::active()) profile->note_malloc(size, seconds_since(t0));
    if (e != cudaSuccess) {
      cudaGetLastError();  // clear the sticky error; the caller reports OutOfMemory
      return nullptr;
    }
    return p;
  }
  void system_free(void* p, size_t size) override {
    const auto t0 = std::chrono::steady_clock::now();
    cudaFree(p);
    if (CallProfile* profile = CallProfile::active()) profile->note_free(size, seconds_since(t0));
  }
  static double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  int index_;
  std::atomic<int> pools_live_{0};
  std::mutex pool_mutex_;
  GraphPool* capture_ = nullptr;
  std::thread::id capture_thread_;
  std::unordered_map<void*, GraphPool*> owner_;
};

// A captured decode step and the memory it was captured with.
class CudaGraph final : public DeviceGraph {
 public:
  CudaGraph(cudaGraphExec_t exec, cudaStream_t stream, CudaAllocator& allocator, std::unique_ptr<GraphPool> pool)
      : exec_(exec), stream_(stream), allocator_(allocator), pool_(std::move(pool)) {}
  ~CudaGraph() override {
    cudaGraphExecDestroy(exec_);
    allocator_.release_pool(*pool_);
  }
  void replay() override {
    const cudaError_t e = profiled_launch(stream_, "decode step (graph replay)", [&] { return cudaGraphLaunch(exec_, stream_); });
    check(e, "cudaGraphLaunch");
  }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
  CudaAllocator& allocator_;
  std::unique_ptr<GraphPool> pool_;
};

// The CUDA prepared layout: the MLX layout itself, copied into one device buffer with
// contiguous rows (w, then scales, then biases), so the source tensors can go.
class CudaPreparedWeight final : public PreparedWeight {
 public:
  CudaPreparedWeight(Device device, const kernels::QuantView& w)
      : PreparedWeight(device, w.n, w.k, w.bits, w.group_size, w.scale_dtype, w.mode),
        w_bytes_(static_cast<size_t>(w.n * (w.k * w.bits / 32)) * 4),
        s_bytes_(static_cast<size_t>(w.n * (w.k / w.group_size)) * dtype_size(w.scale_dtype)),
        b_bytes_(w.mode == QuantMode::affine ? s_bytes_ : 0) {
    void* p = nullptr;
    if (cudaMalloc(&p, bytes()) != cudaSuccess) {
      cudaGetLastError();
      throw OutOfMemory("prepare quantized weight: " + std::to_string(bytes()) + " bytes on " + device.str());
    }
    data_.reset(p);
  }
  size_t bytes() const override { return w_bytes_ + s_bytes_ + b_bytes_; }
  const void* host_data() const override { return nullptr; }
  uint32_t* w() const { return static_cast<uint32_t*>(data_.get()); }
  char* scales() const { return static_cast<char*>(data_.get()) + w_bytes_; }
  char* biases() const { return scales() + s_bytes_; }
  size_t w_bytes() const { return w_bytes_; }
  size_t s_bytes() const { return s_bytes_; }
  kernels::QuantView view() const { return view_over(w(), scales(), b_bytes_ ? biases() : nullptr); }

 private:
  struct Free {
    void operator()(void* p) const { cudaFree(p); }
  };
  size_t w_bytes_, s_bytes_, b_bytes_;  // b_bytes_: 0 for the floating-point modes (no biases)
  std::unique_ptr<void, Free> data_;
};

const CudaPreparedWeight& prepared_of(const PreparedWeight& w) {
  LMX_ASSERT(w.device().is_cuda());
  return static_cast<const CudaPreparedWeight&>(w);
}

detail::Elementwise launch_args(const kernels::ElementwiseArgs& a) {
  detail::Elementwise e;
  e.rank = a.rank;
  e.numel = a.numel;
  auto operand = [&](detail::Operand& o, const kernels::StridedOperand& s) {
    o.data = s.data;
    o.dtype = code(s.dtype);
    std::copy(s.strides, s.strides + kernels::kMaxRank, o.strides);
  };
  std::copy(a.shape, a.shape + kernels::kMaxRank, e.shape);
  operand(e.out, a.out);
  for (int k = 0; k < 3; ++k) operand(e.in[k], a.in[k]);
  return e;
}

detail::Quant launch_args(const kernels::QuantView& w) {
  return {w.w, w.scales, w.biases, code(w.scale_dtype), w.n, w.k, w.bits, w.group_size, w.w_row_stride(),
          w.s_row_stride(), static_cast<int>(w.mode)};
}

detail::Channel launch_args(const kernels::ChannelVector& c) { return {c.data, code(c.dtype)}; }

// The targets of one matvec launch (at most detail::kMaxMatvecTargets): their matrices,
// outputs and output strides.
template <class Matrix>
struct TargetArgs {
  Matrix w[detail::kMaxMatvecTargets];
  float* y[detail::kMaxMatvecTargets];
  int64_t ldy[detail::kMaxMatvecTargets];
};

TargetArgs<detail::Dense> launch_args(std::span<const DenseMatmulTarget> targets) {
  TargetArgs<detail::Dense> a;
  for (size_t i = 0; i < targets.size(); ++i) {
    const kernels::DenseWeightView& v = targets[i].w;
    a.w[i] = {static_cast<const uint16_t*>(v.data), code(v.dtype), v.n, v.k, v.ld};
    a.y[i] = targets[i].y, a.ldy[i] = targets[i].ldy;
  }
  return a;
}

TargetArgs<detail::Quant> launch_args(std::span<const PreparedMatmulTarget> targets) {
  TargetArgs<detail::Quant> a;
  for (size_t i = 0; i < targets.size(); ++i) {
    a.w[i] = launch_args(prepared_of(*targets[i].w).view());
    a.y[i] = targets[i].y, a.ldy[i] = targets[i].ldy;
  }
  return a;
}

void copy4(const int64_t* from, int64_t* to) { std::copy(from, from + 4, to); }

void set_options(detail::Attention& l, const kernels::AttentionOptions& o) {
  l.scale = o.scale;
  l.causal = o.causal;
  l.q_offset = o.q_offset;
  l.window = o.window;
  l.mask = o.mask;
  copy4(o.mask_strides, l.mask_strides);
  l.softcap = o.softcap;
  l.sinks = o.sinks;
}

}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

class CudaBackend final : public Backend, public GraphBackend {
 public:
  explicit CudaBackend(int index) : index_(index), allocator_(index) {
    check(cudaSetDevice(index_), "cudaSetDevice");
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    cublas_ = std::make_unique<CublasGemm>(index_, stream_);
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, index_) == cudaSuccess) name_ = prop.name, sm_count_ = prop.multiProcessorCount;
    void* counters = nullptr;  // made here: allocating them during a capture would be recorded
    check(cudaMalloc(&counters, kDecodeCounters * sizeof(unsigned)), "cudaMalloc (attention counters)");
    check(cudaMemset(counters, 0, kDecodeCounters * sizeof(unsigned)), "cudaMemset (attention counters)");
    decode_counters_ = static_cast<unsigned*>(counters);
  }
  cudaStream_t stream() const { return stream_; }
  Device device() const override { return Device::cuda(index_); }
  std::string describe() const override { return device().str() + " " + name_; }
  Allocator& allocator() override { return allocator_; }
  void synchronize() override { sync("synchronize"); }

  void copy_bytes(void* dst, const void* src, size_t bytes, CopyDirection direction) override {
    if (bytes == 0) return;
    use_device();
    cudaMemcpyKind k = direction == CopyDirection::host_to_device   ? cudaMemcpyHostToDevice
                       : direction == CopyDirection::device_to_host ? cudaMemcpyDeviceToHost
                                                                    : cudaMemcpyDeviceToDevice;
    if (CallProfile* p = CallProfile::active()) {
      p->note_copy(direction == CopyDirection::host_to_device   ? "host to device"
                   : direction == CopyDirection::device_to_host ? "device to host"
                                                                : "device to device",
                   bytes);
    }
    // Small uploads go through page-locked slots, queued (not during a capture: a graph would
    // read the slot at replay).
    if (direction == CopyDirection::host_to_device && !capture_pool_ && cuda_staged_copies() &&
        staging_.copy(dst, src, bytes, stream_)) {
      return;
    }
    check(cudaMemcpyAsync(dst, src, bytes, k, stream_), "cudaMemcpyAsync");
    // The host side of a copy may be read or freed as soon as we return.
    if (direction != CopyDirection::device_to_device) sync("copy");
  }

  // Element-wise ---------------------------------------------------------------------
  void copy_strided(const kernels::ElementwiseArgs& a) override {
    launch("copy", [&] { return detail::launch_copy(prep(launch_args(a)), stream_); });
  }
  void unary(kernels::UnaryKernel op, const kernels::ElementwiseArgs& a) override {
    launch("unary", [&] {
      return detail::launch_unary(static_cast<int>(op), prep(launch_args(a)), stream_);
    });
  }
  void binary(kernels::ArithmeticKernel op, const kernels::ElementwiseArgs& a) override {
    launch("binary", [&] {
      return detail::launch_binary(static_cast<int>(op), prep(launch_args(a)), stream_);
    });
  }
  void compare(kernels::CompareKernel op, const kernels::ElementwiseArgs& a) override {
    launch("compare", [&] {
      return detail::launch_compare(static_cast<int>(op), prep(launch_args(a)), stream_);
    });
  }
  void where(const kernels::ElementwiseArgs& a) override {
    launch("where", [&] { return detail::launch_where(prep(launch_args(a)), stream_); });
  }
  void fill(void* data, Dtype dtype, int64_t n, double value) override {
    use_device();
    // Tensor::full stores zeros as zero bytes, -0.0 included.
    launch("fill", [&] {
      return detail::launch_fill(data, code(dtype), n, value == 0.0 ? 0.0 : value, stream_);
    });
  }
  void gather_rows(const void* src, int64_t row_bytes, const int64_t* ids, int64_t count, void* out) override {
    use_device();
    launch("take",
           [&] { return detail::launch_gather_rows(src, row_bytes, ids, count, out, stream_); });
  }
  void binary_f32(BinaryKernel op, const float* a, const float* b, float* out, int64_t n) override {
    use_device();
    launch("binary",
           [&] { return detail::launch_binary_f32(static_cast<int>(op), a, b, out, n, stream_); });
  }
  void add_bias(float* y, int64_t rows, int64_t n, const float* bias) override {
    use_device();
    launch("add_bias", [&] { return detail::launch_add_bias(y, rows, n, bias, stream_); });
  }
  void activation_mul(kernels::Activation act, const float* gate, const float* up, float* out, int64_t n) override {
    use_device();
    launch("gated_activation", [&] {
      return detail::launch_activation_mul(static_cast<int>(act), gate, up, out, n, stream_);
    });
  }
  int64_t argmax_f32(const float* x, int64_t n) override {
    use_device();
    int64_t* result = static_cast<int64_t*>(allocator_.allocate(sizeof(int64_t)));
    int64_t host = 0;
    cudaError_t e = detail::launch_argmax_f32(x, n, result, stream_);
    if (e == cudaSuccess) e = cudaMemcpyAsync(&host, result, sizeof host, cudaMemcpyDeviceToHost, stream_);
    if (e == cudaSuccess) e = wait_stream("argmax");
    allocator_.deallocate(result, sizeof(int64_t));
    check(e, "argmax");
    return host;
  }

  // Linear algebra -------------------------------------------------------------------
  void gemm_f32(const kernels::GemmArgs& g) override {
    use_device();
    const detail::Gemm l{g.m,    g.n,    g.k,    g.alpha, g.beta, g.a,     g.a_rs,  g.a_cs, g.b,
                         g.b_rs, g.b_cs, g.c,    g.c_rs,  g.c_cs, g.batch, g.a_bs,  g.b_bs, g.c_bs};
    if (cuda_thin_gemm() && thin_gemm(l)) return;
    if (g.m > kMatvecRows && sgemm(g)) return;
    launch_shaped("matmul", {{"m", g.m}, {"n", g.n}, {"k", g.k}, {"batch", g.batch}},
                  [&] { return detail::launch_gemm_f32(l, stream_); });
  }
  // Past the matvec's rows: SGEMM for f32 W, bf16 x bf16 -> f32 cuBLAS for bf16 W (x
  // rounded to bf16 once); f16 W stays on the own kernel (f16 x could overflow).
  void matmul_nt(const float* x, int64_t ldx, const kernels::DenseWeightView& w, float* y, int64_t ldy,
                 int64_t m) override {
    use_device();
    if (m > kMatvecRows && w.dtype == Dtype::f32) {
      kernels::GemmArgs g;
      g.m = m, g.n = w.n, g.k = w.k;
      g.a = x, g.a_rs = ldx, g.a_cs = 1;
      g.b = static_cast<const float*>(w.data), g.b_rs = 1, g.b_cs = w.ld;
      g.c = y, g.c_rs = ldy, g.c_cs = 1;
      if (sgemm(g)) return;
    }
    const DenseMatmulTarget target{w, y, ldy};
    if (bf16_gemms(x, ldx, {&target, 1}, m)) return;
    launch(m <= kMatvecRows ? "linear (matvec)" : "linear", [&] {
      return detail::launch_matmul_nt(x, ldx, w.data, code(w.dtype), w.n, w.k, w.ld, y, ldy, m,
                                      stream_);
    });
  }
  // A decode step's projections of one x in one launch where the matvec kernel takes
  // them together (f16 / bf16 of one k); otherwise one matmul_nt each.
  void matmul_nt_targets(const float* x, int64_t ldx, std::span<const DenseMatmulTarget> targets,
                         int64_t m) override {
    if (targets.size() > 1 && targets.size() <= static_cast<size_t>(detail::kMaxMatvecTargets)) {
      const TargetArgs<detail::Dense> a = launch_args(targets);
      use_device();
      bool fused = false;
      launch("linear (matvec, shared x)", [&] {
        cudaError_t e = cudaSuccess;
        fused = detail::launch_vector_matvec_dense_targets(x, ldx, a.w, a.y, a.ldy, static_cast<int>(targets.size()),
                                                           m, stream_, &e);
        return e;
      });
      if (fused) return;
    }
    if (bf16_gemms(x, ldx, targets, m)) return;
    for (const DenseMatmulTarget& t : targets) matmul_nt(x, ldx, t.w, t.y, t.ldy, m);
  }
  void quantized_matmul(const float* x, int64_t ldx, const kernels::QuantView& w, float* y, int64_t ldy,
                        int64_t m) override {
    quantized_matmul_at(x, ldx, w, y, ldy, m, kernels::ActivationPrecision::f32);
  }
  // Past the matvec's rows, with LMX_CUDA_QUANT_BF16_PREFILL on (the default since session
  // 14; read at each call), a bf16 or f16 model's weights (bf16 / f16 scales) at reduced
  // activation precision run the bf16 tensor-core GEMM of dense bf16 weights; otherwise,
  // and always at f32 (and f32 scales), the exact SGEMM.
  void quantized_matmul_at(const float* x, int64_t ldx, const kernels::QuantView& w, float* y, int64_t ldy,
                           int64_t m, kernels::ActivationPrecision precision) {
    use_device();
    // 2..8 rows too where LMX_CUDA_QUANT_FEW_ROWS_SMALL is on (the default since session 18): a
    // served batch's decode step (the CUDA-core matvec took ~165 us a launch at 8 rows, session 17).
    const int64_t few_from = cuda_quant_few_rows_small() ? 2 : kMatvecRows + 1;
    if (m >= few_from && precision != kernels::ActivationPrecision::f32 && cuda_quant_few_rows() &&
        quant_gemm_few(x, ldx, w, y, ldy, m)) {
      return;
    }
    if (m > kMatvecRows && cuda_quant_bf16_prefill() && precision != kernels::ActivationPrecision::f32 &&
        (w.scale_dtype == Dtype::bf16 || w.scale_dtype == Dtype::f16) && dequantized_bf16_gemm(x, ldx, w, y, ldy, m)) {
      return;
    }
    if (m > kMatvecRows && dequantized_sgemm(x, ldx, w, y, ldy, m)) return;
    launch(m <= kMatvecRows ? "quantized_linear (matvec)" : "quantized_linear", [&] {
      return detail::launch_quantized_matmul(x, ldx, launch_args(w), y, ldy, m, stream_);
    });
  }
  // The matvec kernels up to 8 rows (every row count at f32 precision), a decode step's
  // projections of one x in one launch where they take them together; 9..64 rows at
  // reduced precision (2..64 with LMX_CUDA_QUANT_FEW_ROWS_SMALL): the few-row GEMM.
  void prepared_matmul(const float* x, int64_t ldx, std::span<const PreparedMatmulTarget> targets, int64_t m,
                       kernels::ActivationPrecision precision) override {
    // 2..8 rows at reduced precision go to the few-row GEMM one target at a time (below).
    const bool few_rows = m >= 2 && precision != kernels::ActivationPrecision::f32 && cuda_quant_few_rows() &&
                          cuda_quant_few_rows_small();
    if (!few_rows && targets.size() > 1 && targets.size() <= static_cast<size_t>(detail::kMaxMatvecTargets)) {
      const TargetArgs<detail::Quant> a = launch_args(targets);
      use_device();
      bool fused = false;
      launch("quantized_linear (matvec, shared x)", [&] {
        cudaError_t e = cudaSuccess;
        fused = detail::launch_vector_matvec_quant_targets(
            x, ldx, a.w, a.y, a.ldy, static_cast<int>(targets.size()), m, stream_, &e);
        return e;
      });
      if (fused) return;
    }
    for (const PreparedMatmulTarget& t : targets)
      quantized_matmul_at(x, ldx, prepared_of(*t.w).view(), t.y, t.ldy, m, precision);
  }

  // A decode row's linears with the norm or gated activation before them made inside the
  // matvec (LMX_CUDA_FUSED_INPUT): the dense and quantized matvec kernels of one launch.
  bool linears_with_prologue(const kernels::InputPrologue& in, std::span<const DenseMatmulTarget> dense,
                             std::span<const PreparedMatmulTarget> prepared) override {
    const size_t count = dense.size() + prepared.size();
    if (!cuda_fused_input() || count < 1 || count > static_cast<size_t>(detail::kMaxMatvecTargets) ||
        (!dense.empty() && !prepared.empty())) {
      return false;
    }
    detail::XPrologue p;
    if (in.kind == kernels::InputPrologue::Kind::gated) {
      p.kind = 1, p.act = static_cast<int>(in.act), p.up = in.up;
    } else {
      p.kind = 2, p.w = in.norm.weight.data, p.w_dtype = code(in.norm.weight.dtype);
      p.unit_offset = in.norm.add_unit_offset, p.eps = in.norm.eps;
      p.residual = in.norm.residual, p.sum = in.norm.sum;
    }
    use_device();
    bool done = false;
    launch("linear (matvec, fused input)", [&] {
      cudaError_t e = cudaSuccess;
      const int n = static_cast<int>(count);
      if (dense.empty()) {
        const TargetArgs<detail::Quant> a = launch_args(prepared);
        done = detail::launch_vector_matvec_quant_targets(in.x, in.k, a.w, a.y, a.ldy, n, 1, stream_, &e, &p);
      } else {
        const TargetArgs<detail::Dense> a = launch_args(dense);
        done = detail::launch_vector_matvec_dense_targets(in.x, in.k, a.w, a.y, a.ldy, n, 1, stream_, &e, &p);
      }
      return e;
    });
    return done;
  }

  // Quantized weights ----------------------------------------------------------------
  std::shared_ptr<const PreparedWeight> prepare_quantized(const kernels::QuantView& w) override {
    use_device();
    auto p = std::make_shared<CudaPreparedWeight>(device(), w);
    const size_t s_size = dtype_size(w.scale_dtype), s_cols = static_cast<size_t>(w.k / w.group_size);
    const size_t w_cols = static_cast<size_t>(w.k * w.bits / 32);
    const auto rows = static_cast<size_t>(w.n);
    if (rows > 0) {
      check(cudaMemcpy2DAsync(p->w(), w_cols * 4, w.w, static_cast<size_t>(w.w_row_stride()) * 4, w_cols * 4, rows,
                              cudaMemcpyDeviceToDevice, stream_),
            "prepare quantized weight");
      const size_t s_pitch = static_cast<size_t>(w.s_row_stride()) * s_size;
      check(cudaMemcpy2DAsync(p->scales(), s_cols * s_size, w.scales, s_pitch, s_cols * s_size, rows,
                              cudaMemcpyDeviceToDevice, stream_),
            "prepare quantized weight");
      if (w.mode == QuantMode::affine) {
        check(cudaMemcpy2DAsync(p->biases(), s_cols * s_size, w.biases, s_pitch, s_cols * s_size, rows,
                                cudaMemcpyDeviceToDevice, stream_),
              "prepare quantized weight");
      }
    }
    return p;
  }
  void unpack_prepared(const PreparedWeight& w, uint32_t* out_w, void* out_scales, void* out_biases) override {
    use_device();
    const CudaPreparedWeight& p = prepared_of(w);
    check(cudaMemcpyAsync(out_w, p.w(), p.w_bytes(), cudaMemcpyDeviceToDevice, stream_), "unpack");
    check(cudaMemcpyAsync(out_scales, p.scales(), p.s_bytes(), cudaMemcpyDeviceToDevice, stream_), "unpack");
    if (p.mode() == QuantMode::affine) {
      check(cudaMemcpyAsync(out_biases, p.biases(), p.s_bytes(), cudaMemcpyDeviceToDevice, stream_), "unpack");
    }
  }
  void dequantize(const kernels::QuantView& w, int64_t r0, int64_t r1, float* out, int64_t ldo) override {
    use_device();
    launch("dequantize",
           [&] { return detail::launch_dequantize(launch_args(w), r0, r1, out, ldo, stream_); });
  }
  void dequantize_prepared(const PreparedWeight& w, int64_t r0, int64_t r1, float* out, int64_t ldo) override {
    dequantize(prepared_of(w).view(), r0, r1, out, ldo);
  }
  void dequantize_gather(const kernels::QuantView& w, const int64_t* ids, int64_t count, float* out,
                         int64_t ldo) override {  // GraphBackend
    use_device();
    launch("dequantize (gather)",
           [&] { return detail::launch_dequantize_gather(launch_args(w), ids, count, out, ldo, stream_); });
  }
  void dequantize_prepared_gather(const PreparedWeight& w, const int64_t* ids, int64_t count, float* out,
                                  int64_t ldo) override {
    dequantize_gather(prepared_of(w).view(), ids, count, out, ldo);
  }
  void quantize_affine(const float* w, int64_t n, int64_t k, int bits, int group_size, uint32_t* out_w,
                       void* out_scales, void* out_biases, Dtype scale_dtype) override {
    use_device();
    launch("quantize", [&] {
      return detail::launch_quantize_affine(w, n, k, bits, group_size, out_w, out_scales,
                                            out_biases, code(scale_dtype), stream_);
    });
  }

  // Neural-network kernels -----------------------------------------------------------
  void softmax(const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo, bool log) override {
    use_device();
    launch(log ? "log_softmax" : "softmax",
           [&] { return detail::launch_softmax(x, rows, dim, ldx, out, ldo, log, stream_); });
  }
  void rms_norm(const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo,
                const kernels::RmsNormOptions& o) override {
    use_device();
    const detail::FusedResidual fused{o.residual, o.ld_residual, o.sum, o.ld_sum};
    launch(o.residual ? "add + rms_norm" : "rms_norm", [&] {
      return detail::launch_rms_norm(x, rows, dim, ldx, out, ldo, launch_args(o.weight),
                                     o.add_unit_offset, o.eps, fused, stream_);
    });
  }
  void layer_norm(const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo,
                  const kernels::LayerNormOptions& o) override {
    use_device();
    launch("layer_norm", [&] {
      return detail::launch_layer_norm(x, rows, dim, ldx, out, ldo, launch_args(o.weight),
                                       launch_args(o.bias), o.eps, stream_);
    });
  }
  void rope(const float* x, float* out, const kernels::RopeOptions& o) override {
    use_device();
    detail::Rope r;
    r.batch = o.batch;
    r.heads = o.heads;
    r.seq = o.seq;
    r.head_dim = o.head_dim;
    copy4(o.x_strides, r.x_strides);
    copy4(o.out_strides, r.out_strides);
    r.rotary_dim = o.rotary_dim;
    r.traditional = o.traditional;
    r.inv_freq = o.inv_freq;
    r.offset = o.offset;
    r.batch_offsets = o.batch_offsets;
    r.positions = o.positions;
    r.mscale = o.mscale;
    launch("rope", [&] { return detail::launch_rope(x, out, r, stream_); });
  }
  void attention(const kernels::AttentionArgs& a, const kernels::AttentionOptions& o) override {
    const char* op = "scaled_dot_product_attention";
    check_heads(op, a.head_dim, a.v_head_dim, a.q_heads, a.kv_heads);
    detail::Attention l;
    l.batch = a.batch, l.q_heads = a.q_heads, l.kv_heads = a.kv_heads, l.q_len = a.q_len, l.kv_len = a.kv_len;
    l.head_dim = a.head_dim, l.v_head_dim = a.v_head_dim;
    l.q = a.q, l.k = a.k, l.v = a.v, l.kv_dtype = code(a.kv_dtype), l.out = a.out;
    copy4(a.q_strides, l.q_strides);
    copy4(a.k_strides, l.k_strides);
    copy4(a.v_strides, l.v_strides);
    copy4(a.out_strides, l.out_strides);
    set_options(l, o);
    // In a captured decode step (the ops front end checked the shapes) the position and
    // the key count are read on the device.
    const StepValues* step = a.q_len == 1 ? step_values(device()) : nullptr;
    if (step || (cuda_decode_attention() && a.kv_len > 0)) {
      if (run_decode_attention(l, step ? step->position : nullptr, step ? step->kv_capacity : a.kv_len)) return;
      if (step) throw Unsupported(std::string(op) + ": a captured decode step over these shapes");
    }
    run_attention(l, a.q_len == 1 ? "attention (one query)" : op);
  }
  void write_at_position(const kernels::PositionedWriteArgs& a) override {
    use_device();
    detail::PositionedWrite w;
    w.batch = a.batch, w.heads = a.heads, w.seq = a.seq, w.dim = a.dim;
    w.src = a.src, w.dst = a.dst, w.bf16_dst = a.bf16_dst, w.position = a.position;
    copy4(a.src_strides, w.src_strides);
    copy4(a.dst_strides, w.dst_strides);
    launch("kv append (device position)", [&] { return detail::launch_write_at_position(w, stream_); });
  }
  void rope_append(const kernels::RopeAppendArgs& a) override {
    use_device();
    detail::RopeAppend r;
    r.q_heads = a.q_heads, r.kv_heads = a.kv_heads, r.head_dim = a.head_dim, r.v_head_dim = a.v_head_dim;
    r.rotary_dim = a.rotary_dim, r.traditional = a.traditional, r.inv_freq = a.inv_freq, r.mscale = a.mscale;
    r.q = a.q, r.q_out = a.q_out, r.k = a.k, r.v = a.v, r.kbuf = a.kbuf, r.vbuf = a.vbuf;
    r.bf16_buffers = a.bf16_buffers;
    copy4(a.q_strides, r.q_strides);
    copy4(a.q_out_strides, r.q_out_strides);
    copy4(a.k_strides, r.k_strides);
    copy4(a.v_strides, r.v_strides);
    copy4(a.kbuf_strides, r.kbuf_strides);
    copy4(a.vbuf_strides, r.vbuf_strides);
    r.position = a.position, r.device_position = a.device_position;
    launch("rope + kv append (decode)", [&] { return detail::launch_rope_append(r, stream_); });
  }
  std::shared_ptr<void> pinned_host(size_t bytes) override {
    use_device();
    void* p = nullptr;
    check(cudaMallocHost(&p, std::max<size_t>(bytes, 1)), "cudaMallocHost");
    return std::shared_ptr<void>(p, [](void* q) { cudaFreeHost(q); });
  }
  void copy_async(void* dst, const void* src, size_t bytes, CopyDirection direction) override {
    if (bytes == 0) return;
    use_device();
    const cudaMemcpyKind k = direction == CopyDirection::host_to_device   ? cudaMemcpyHostToDevice
                             : direction == CopyDirection::device_to_host ? cudaMemcpyDeviceToHost
                                                                          : cudaMemcpyDeviceToDevice;
    check(cudaMemcpyAsync(dst, src, bytes, k, stream_), "cudaMemcpyAsync (pinned)");
  }
  bool begin_graph_capture() override {
    if (!cuda_graphs() || CallProfile::active()) return false;
    use_device();
    capture_pool_ = std::make_unique<GraphPool>();
    allocator_.begin_capture(capture_pool_.get());
    if (cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed) != cudaSuccess) {
      cudaGetLastError();
      allocator_.end_capture();
      allocator_.release_pool(*capture_pool_);
      capture_pool_.reset();
      return false;
    }
    return true;
  }
  std::unique_ptr<DeviceGraph> end_graph_capture(bool keep) override {
    use_device();
    cudaGraph_t graph = nullptr;
    cudaError_t e = cudaStreamEndCapture(stream_, &graph);
    allocator_.end_capture();
    std::unique_ptr<GraphPool> pool = std::move(capture_pool_);
    cudaGraphExec_t exec = nullptr;
    if (e == cudaSuccess && graph && keep) e = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (e != cudaSuccess || !keep || !exec) {
      cudaGetLastError();  // a failed capture is not sticky: clear it
      if (pool) allocator_.release_pool(*pool);
      return nullptr;
    }
    return std::make_unique<CudaGraph>(exec, stream_, allocator_, std::move(pool));
  }
  void quantized_attention(const kernels::QuantizedAttentionArgs& a, const kernels::AttentionOptions& o) override {
    const char* op = "quantized_scaled_dot_product_attention";
    check_heads(op, a.head_dim, a.v_head_dim, a.q_heads, a.kv_heads);
    detail::Attention l;
    l.batch = a.batch, l.q_heads = a.q_heads, l.kv_heads = a.kv_heads, l.q_len = a.q_len, l.kv_len = a.kv_len;
    l.head_dim = a.head_dim, l.v_head_dim = a.v_head_dim;
    l.q = a.q, l.out = a.out, l.quantized = true, l.group_size = a.group_size;
    copy4(a.q_strides, l.q_strides);
    copy4(a.out_strides, l.out_strides);
    auto rows = [](detail::QuantRows& r, const kernels::QuantizedRows& s) {
      r.w = s.w, r.scales = s.scales, r.biases = s.biases, r.bits = s.bits;
      std::copy(s.w_strides, s.w_strides + 3, r.w_strides);
      std::copy(s.s_strides, s.s_strides + 3, r.s_strides);
    };
    rows(l.qk, a.k);
    rows(l.qv, a.v);
    set_options(l, o);
    run_attention(l, a.q_len == 1 ? "attention (one query)" : op);
  }

  void cross_entropy_grad(const kernels::CrossEntropyGradArgs& a) override {
    use_device();
    launch_shaped("cross_entropy_grad", {{"rows", a.rows}, {"vocab", a.vocab}}, [&] {
      return detail::launch_cross_entropy_grad(a.logits, a.lse, a.targets, a.coef, a.out, a.rows, a.vocab, stream_);
    });
  }
  void reduce_rows(ReduceKernel kind, const void* x, Dtype dtype, int64_t rows, int64_t n, void* out) override {
    use_device();
    const size_t bytes = detail::reduce_rows_scratch(static_cast<int>(kind), code(dtype), rows, n);
    void* scratch = bytes ? allocator_.allocate(bytes) : nullptr;
    try {
      launch_shaped("reduce", {{"kind", static_cast<int64_t>(kind)}, {"rows", rows}, {"n", n}}, [&] {
        return detail::launch_reduce_rows(static_cast<int>(kind), x, code(dtype), rows, n, out, scratch, stream_);
      });
    } catch (...) {
      if (scratch) allocator_.deallocate(scratch, bytes);
      throw;
    }
    if (scratch) allocator_.deallocate(scratch, bytes);  // stream-ordered: the kernels are queued before any reuse
  }
  void ssm_scan(const kernels::SsmScanArgs& a) override {
    use_device();
    const detail::SsmScan l{a.batch, a.seq, a.heads, a.head_dim, a.state_dim, a.groups, a.x, a.dt,
                            a.a,     a.b,   a.c,     a.d,        a.state,     a.y};
    launch("ssm_scan", [&] { return detail::launch_ssm_scan(l, stream_); });
  }
  void gated_delta_scan(const kernels::GatedDeltaArgs& a) override {
    use_device();
    const detail::GatedDelta l{a.batch, a.seq, a.k_heads, a.v_heads, a.k_dim, a.v_dim, a.q, a.k, a.v,
                               a.g,     a.beta, a.state,  a.out};
    launch("gated_delta_scan", [&] { return detail::launch_gated_delta_scan(l, stream_); });
  }
  void adam_step(const kernels::AdamStepArgs& a) override {
    use_device();
    const detail::AdamStep l{a.w,         a.g,         a.m,     a.v,   a.w_out, a.n,
                             a.beta1,     a.one_minus_beta1,    a.beta2,     a.one_minus_beta2,
                             a.m_divisor, a.v_divisor, a.decay, a.eps, a.lr};
    launch("adam_step", [&] { return detail::launch_adam_step(l, stream_); });
  }

  std::unique_ptr<DeviceCollectives> make_collectives(const std::vector<int>& devices) override {
#ifdef LMX_HAS_NCCL
    return make_nccl_collectives(devices);
#else
    (void)devices;
    throw Unsupported("tensor parallel on GPUs: this build of lmx has no NCCL (nccl.h was not found at build time)");
#endif
  }

  std::optional<size_t> recommended_working_set(size_t reserve_bytes) override {
    return cuda::recommended_working_set(index_, reserve_bytes);
  }
  size_t reserved_pool_bytes() override { return cuda::reserved_pool_bytes(index_); }
  std::string reserve_pool(size_t bytes) override { return cuda::reserve_pool(index_, bytes); }

 private:
  void use_device() { check(cudaSetDevice(index_), "cudaSetDevice"); }
  const detail::Elementwise& prep(const detail::Elementwise& e) {
    use_device();
    return e;
  }
  template <class F>
  void launch(const char* op, F&& f) {
    check(profiled_launch(stream_, op, f), op);
  }
  // launch(), in a row of its own per shape under LMX_CUDA_PROFILE=shapes.
  template <class F>
  void launch_shaped(const char* op, std::initializer_list<std::pair<const char*, int64_t>> sizes, F&& f) {
    CallProfile* p = CallProfile::active();
    if (!p || !p->by_shape()) return launch(op, f);
    check(profiled_launch(stream_, CallProfile::shaped(op, sizes), f), op);
  }
  // Waits for the stream; the wait is the profile's "sync" row.
  cudaError_t wait_stream(const char* op) {
    CallProfile* p = CallProfile::active();
    if (!p) return cudaStreamSynchronize(stream_);
    const auto t0 = std::chrono::steady_clock::now();
    const cudaError_t e = cudaStreamSynchronize(stream_);
    p->note_sync(op, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return e;
  }
  void sync(const char* op) { check(wait_stream(op), op); }
  // One query row on the decode kernel; false (nothing launched) where it does not apply.
  bool run_decode_attention(const detail::Attention& l, const int64_t* device_position, int64_t keys) {
    // A captured step reads its key count on the device; a mask's length is the host's.
    if (!detail::decode_attention_supported(l) || (device_position && l.mask) || keys <= 0 ||
        keys > 65535 * detail::kDecodeKeys ||
        detail::decode_attention_counters(l) > kDecodeCounters) {
      return false;
    }
    use_device();
    const size_t bytes = static_cast<size_t>(detail::decode_attention_scratch_floats(l, keys)) * sizeof(float);
    float* scratch = static_cast<float*>(allocator_.allocate(bytes));
    try {
      launch("attention (decode)", [&] {
        return detail::launch_decode_attention(l, device_position, keys, scratch, decode_counters_, stream_);
      });
    } catch (...) {
      allocator_.deallocate(scratch, bytes);
      throw;
    }
    allocator_.deallocate(scratch, bytes);  // stream-ordered: the kernel is queued before any reuse
    return true;
  }
  void run_attention(const detail::Attention& l, const char* op) {
    use_device();
    if (detail::flash_attention_takes(l)) {
      launch("flash_attention (prefill)", [&] { return detail::launch_flash_attention(l, stream_); });
      return;
    }
    const size_t bytes = static_cast<size_t>(detail::attention_scratch_floats(l)) * sizeof(float);
    float* scratch = bytes > 0 ? static_cast<float*>(allocator_.allocate(bytes)) : nullptr;
    try {
      launch_shaped(op, {{"batch", l.batch}, {"q_heads", l.q_heads}, {"q_len", l.q_len}, {"kv_len", l.kv_len}, {"d", l.head_dim}},
                    [&] { return detail::launch_attention(l, scratch, stream_); });
    } catch (...) {
      allocator_.deallocate(scratch, bytes);
      throw;
    }
    allocator_.deallocate(scratch,
                          bytes);  // stream-ordered: the kernels are queued before any reuse
  }
  // Past the matvec's rows (prefill): W dequantized to f32 (exactly as dequantize does)
  // kDequantChunk bytes of rows at a time, each chunk one cuBLAS SGEMM, in place of the
  // tiled kernel that dequantizes on the fly (2.4k tok/s at pp512 on the 1B shape). False,
  // launching nothing, where cuBLAS does not take the shapes.
  bool dequantized_sgemm(const float* x, int64_t ldx, const kernels::QuantView& w, float* y, int64_t ldy,
                         int64_t m) {
    if (w.mode != QuantMode::affine || w.n <= 0 || w.k <= 0) return false;
    constexpr int64_t kDequantChunk = int64_t{64} << 20;
    const int64_t rows = std::clamp<int64_t>(kDequantChunk / (w.k * 4), 1, w.n);
    const size_t bytes = static_cast<size_t>(rows * w.k) * sizeof(float);
    auto* scratch = static_cast<float*>(allocator_.allocate(bytes));
    bool queued = true;
    try {
      for (int64_t r0 = 0; r0 < w.n && queued; r0 += rows) {
        const int64_t r1 = std::min(w.n, r0 + rows);
        kernels::GemmArgs g;
        g.m = m, g.n = r1 - r0, g.k = w.k;
        g.a = x, g.a_rs = ldx, g.a_cs = 1;
        g.b = scratch, g.b_rs = 1, g.b_cs = w.k;  // B [k, n] = chunk^T
        g.c = y + r0, g.c_rs = ldy, g.c_cs = 1;
        launch("dequantize (prefill)",
               [&] { return detail::launch_dequantize(launch_args(w), r0, r1, scratch, w.k, stream_); });
        queued = sgemm(g);
      }
    } catch (...) {
      allocator_.deallocate(scratch, bytes);
      throw;
    }
    allocator_.deallocate(scratch, bytes);  // stream-ordered: the GEMMs are queued before any reuse
    return queued;
  }
  // W dequantized to bf16 (scale * q + bias in f32, rounded once: what MLX computes in a
  // bf16 model) kDequantChunk bytes of rows at a time, x rounded to bf16 once, and the bf16
  // x bf16 -> f32 cuBLAS GEMM of dense bf16 weights (~3e-3 relative per input element, as
  // there). False, launching nothing, where the shapes do not fit.
  // A batched decode step's rows (9..64) against 4 / 8-bit weights with bf16 scales: the
  // few-row tensor-core GEMM. False, launching nothing, where it does not take W.
  bool quant_gemm_few(const float* x, int64_t ldx, const kernels::QuantView& w, float* y, int64_t ldy, int64_t m) {
    const detail::Quant q = launch_args(w);
    if (!detail::quant_gemm_few_fits(q, m)) return false;
    const size_t bytes = detail::quant_gemm_few_scratch_bytes(q, m);
    void* scratch = allocator_.allocate(bytes);
    try {
      launch("quantized_linear (few rows)",
             [&] { return detail::launch_quant_gemm_few(x, ldx, m, q, y, ldy, scratch, stream_); });
    } catch (...) {
      allocator_.deallocate(scratch, bytes);
      throw;
    }
    allocator_.deallocate(scratch, bytes);  // stream-ordered, as dequantized_bf16_gemm's
    return true;
  }
  bool dequantized_bf16_gemm(const float* x, int64_t ldx, const kernels::QuantView& w, float* y, int64_t ldy,
                             int64_t m) {
    if (w.mode != QuantMode::affine || w.n <= 0 || w.k <= 0 || w.k >= (int64_t{1} << 30) ||
        m * w.k >= (int64_t{1} << 31)) {
      return false;
    }
    constexpr int64_t kDequantChunk = int64_t{64} << 20;
    const int64_t rows = std::clamp<int64_t>(kDequantChunk / (w.k * 2), 1, std::min<int64_t>(w.n, 65535));
    const size_t x_bytes = static_cast<size_t>(m * w.k) * 2, w_bytes = static_cast<size_t>(rows * w.k) * 2;
    void* xb = allocator_.allocate(x_bytes);
    void* scratch = nullptr;
    try {
      scratch = allocator_.allocate(w_bytes);
      to_bf16(x, ldx, m, w.k, xb);
      for (int64_t r0 = 0; r0 < w.n; r0 += rows) {
        const int64_t r1 = std::min(w.n, r0 + rows);
        launch("dequantize (prefill, bf16)", [&] {
          cudaError_t e = cudaSuccess;
          detail::launch_dequantize_bf16(launch_args(w), r0, r1, static_cast<uint16_t*>(scratch), w.k, stream_, &e);
          return e;
        });
        launch("cublas bf16 gemm", [&] {
          cublas_->bf16_nt(xb, scratch, r1 - r0, w.k, w.k, y + r0, ldy, m);
          return cudaSuccess;
        });
      }
    } catch (...) {
      if (scratch) allocator_.deallocate(scratch, w_bytes);
      allocator_.deallocate(xb, x_bytes);
      throw;
    }
    allocator_.deallocate(scratch, w_bytes);  // stream-ordered: the GEMMs are queued before any reuse
    allocator_.deallocate(xb, x_bytes);
    return true;
  }
  // Past the matvec's rows, bf16 weights of one k: x rounded to bf16 once for all the
  // targets (q / k / v, gate / up of a prefill), then one bf16 x bf16 -> f32 cuBLAS GEMM
  // each (a few-row tensor-core kernel for 9..64 rows was measured slower at batch 32 and
  // removed: docs/performance.md, "CUDA, session 17"). False, launching nothing, where a
  // target does not fit.
  bool bf16_gemms(const float* x, int64_t ldx, std::span<const DenseMatmulTarget> targets, int64_t m) {
    if (m <= kMatvecRows || targets.empty()) return false;
    const int64_t k = targets[0].w.k;
    if (k <= 0 || m * k >= (int64_t{1} << 31)) return false;
    for (const DenseMatmulTarget& t : targets) {
      if (t.w.dtype != Dtype::bf16 || t.w.k != k || t.w.ld >= (int64_t{1} << 31)) return false;
    }
    use_device();
    const size_t bytes = static_cast<size_t>(m * k) * 2;
    void* xb = allocator_.allocate(bytes);
    try {
      to_bf16(x, ldx, m, k, xb);
      for (const DenseMatmulTarget& t : targets) {
        launch_shaped("cublas bf16 gemm", {{"m", m}, {"n", t.w.n}, {"k", k}}, [&] {
          cublas_->bf16_nt(xb, t.w.data, t.w.n, k, t.w.ld, t.y, t.ldy, m);
          return cudaSuccess;
        });
      }
    } catch (...) {
      allocator_.deallocate(xb, bytes);
      throw;
    }
    allocator_.deallocate(xb, bytes);  // stream-ordered: the GEMMs queued before any reuse
    return true;
  }
  // x [m, k] (row stride ldx) -> contiguous bf16 (round to nearest even): one pass with
  // 16-byte loads under LMX_CUDA_PREFILL_FUSED, else the strided copy kernel.
  void to_bf16(const float* x, int64_t ldx, int64_t m, int64_t k, void* out) {
    if (cuda_prefill_fused()) {
      launch("linear (x to bf16)", [&] { return detail::launch_rows_to_bf16(x, ldx, m, k, out, stream_); });
      return;
    }
    detail::Elementwise c;
    c.rank = 2, c.shape[0] = m, c.shape[1] = k, c.numel = m * k;
    c.out.data = out, c.out.dtype = detail::kBF16, c.out.strides[0] = k, c.out.strides[1] = 1;
    c.in[0].data = const_cast<float*>(x), c.in[0].dtype = detail::kF32, c.in[0].strides[0] = ldx, c.in[0].strides[1] = 1;
    launch("linear (x to bf16)", [&] { return detail::launch_copy(c, stream_); });
  }
  // One thin side (a low-rank adapter's products) past the sizes where the other kernels
  // do well: thin_gemm.cu. False, launching nothing, where it does not apply.
  bool thin_gemm(const detail::Gemm& g) {
    if (std::max(g.m, g.n) < 256 || g.k < 64) return false;
    const int64_t floats = detail::thin_gemm_scratch_floats(g, sm_count_);
    if (floats < 0) return false;
    const size_t bytes = static_cast<size_t>(floats) * sizeof(float);
    float* scratch = floats > 0 ? static_cast<float*>(allocator_.allocate(bytes)) : nullptr;
    try {
      launch_shaped("thin gemm", {{"m", g.m}, {"n", g.n}, {"k", g.k}, {"batch", g.batch}, {"a_cs", g.a_cs}, {"b_cs", g.b_cs}},
                    [&] { return detail::launch_thin_gemm(g, sm_count_, scratch, stream_); });
    } catch (...) {
      if (scratch) allocator_.deallocate(scratch, bytes);
      throw;
    }
    if (scratch) allocator_.deallocate(scratch, bytes);  // stream-ordered: the kernels are queued before any reuse
    return true;
  }
  bool sgemm(const kernels::GemmArgs& g) {
    bool queued = false;
    launch_shaped("cublas sgemm",
                  {{"m", g.m}, {"n", g.n}, {"k", g.k}, {"batch", g.batch}, {"a_cs", g.a_cs}, {"b_cs", g.b_cs}}, [&] {
      queued = cublas_->sgemm(g);
      return cudaSuccess;
    });
    return queued;
  }
  void check_heads(const char* op, int64_t d, int64_t dv, int64_t hq, int64_t hkv) const {
    if (d > detail::kMaxAttentionHeadDim || dv > detail::kMaxAttentionHeadDim) {
      throw Unsupported(std::string(op) + ": head_dim " + std::to_string(std::max(d, dv)) + " > " +
                        std::to_string(detail::kMaxAttentionHeadDim) + " on " + device().str());
    }
    if (hkv <= 0 || hq % hkv != 0) {
      throw InvalidArgument(std::string(op) + ": q_heads (" + std::to_string(hq) + ") is not a multiple of kv_heads (" +
                            std::to_string(hkv) + ")");
    }
  }

  // Rows up to which the matvec kernels (each weight read once) beat a GEMM.
  static constexpr int64_t kMatvecRows = 8;

  // Arrival counters of the decode attention's splits (zero between launches), made once
  // so a captured step's address stays valid.
  static constexpr int64_t kDecodeCounters = 1 << 16;

  int index_;
  CudaAllocator allocator_;
  cudaStream_t stream_ = nullptr;
  unsigned* decode_counters_ = nullptr;
  std::unique_ptr<GraphPool> capture_pool_;
  HostStaging staging_;  // after stream_: gone before it
  std::unique_ptr<CublasGemm> cublas_;
  std::string name_;
  int sm_count_ = 1;
};

}  // namespace lmx::cuda

namespace lmx::detail {

Backend& cuda_backend(int index) {
  // Every op and every allocation on a device asks for its backend: made ones are read
  // without the lock or the driver's device count.
  constexpr int kFastDevices = 16;
  static std::array<std::atomic<Backend*>, kFastDevices> made{};
  if (index >= 0 && index < kFastDevices) {
    if (Backend* b = made[static_cast<size_t>(index)].load(std::memory_order_acquire)) return *b;
  }
  static std::mutex m;
  // Never destroyed: device buffers held by other statics may be freed after main returns.
  static auto* all = new std::vector<std::unique_ptr<cuda::CudaBackend>>();
  std::lock_guard<std::mutex> lock(m);
  const int n = cuda::device_count();
  if (index < 0 || index >= n) {
    throw Unsupported("cuda:" + std::to_string(index) + " does not exist (" + std::to_string(n) +
                      " CUDA devices visible)");
  }
  if (all->size() < static_cast<size_t>(n)) all->resize(static_cast<size_t>(n));
  auto& slot = (*all)[static_cast<size_t>(index)];
  if (!slot) slot = std::make_unique<cuda::CudaBackend>(index);
  if (index < kFastDevices)
    made[static_cast<size_t>(index)].store(slot.get(), std::memory_order_release);
  return *slot;
}

}  // namespace lmx::detail

namespace lmx::cuda {

void* device_stream(int index) {
  return static_cast<CudaBackend&>(::lmx::detail::cuda_backend(index)).stream();
}

}  // namespace lmx::cuda
