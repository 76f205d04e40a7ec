// The backend seam: what a device provides to the tensor engine. The ops front ends in
// lmx/core/ops validate their tensors, check that all of them live on one device, turn
// them into the plain argument structs of lmx/core/kernel_args.h and call that device's
// Backend; they are its only callers. lmx/backend/cpu and lmx/backend/cuda each fill the
// table in (detail::cpu_backend(), detail::cuda_backend()), so a layer written once
// against lmx::ops runs on every device, and nothing above lmx/core includes a backend.
//
// An entry a backend does not provide throws Unsupported naming the op and the device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/core/allocator.h"
#include "lmx/core/device.h"
#include "lmx/core/kernel_args.h"

namespace lmx {

// Collectives among the ranks of one group, rank r on device(r): f32 buffers on that device,
// the operations queued on its stream (no host wait). A failed rank calls abort(): every rank
// inside a collective, or entering one later, gets an Error quoting the reason.
class DeviceCollectives {
 public:
  virtual ~DeviceCollectives() = default;
  virtual int world() const = 0;
  virtual Device device(int rank) const = 0;
  // out[i] = the ranks' in[i] summed (n values each).
  virtual void all_reduce_sum(int rank, const float* in, float* out, size_t n) = 0;
  // out [world, n] rank-major: every rank's n values.
  virtual void all_gather(int rank, const float* in, float* out, size_t n) = 0;
  virtual void abort(const std::string& reason) = 0;
  // Throws the group's failure, if there is one (before each collective).
  virtual void throw_if_failed(const char* what) = 0;
};

// A quantized weight in a backend's own layout, made once when the weight is prepared
// for the device it lives on (the CPU repacks rows for its kernels). It records the
// matrix's shape and quantization, so the MLX tensors can be released: the backend gives
// them back bit for bit (Backend::unpack_prepared).
class PreparedWeight {
 public:
  PreparedWeight(Device device, int64_t n, int64_t k, int bits, int group_size, Dtype scale_dtype,
                 QuantMode mode = QuantMode::affine)
      : device_(device),
        n_(n),
        k_(k),
        bits_(bits),
        group_size_(group_size),
        scale_dtype_(scale_dtype),
        mode_(mode) {}
  virtual ~PreparedWeight() = default;
  PreparedWeight(const PreparedWeight&) = delete;
  PreparedWeight& operator=(const PreparedWeight&) = delete;

  Device device() const { return device_; }
  int64_t n() const { return n_; }  // output features (rows)
  int64_t k() const { return k_; }  // input features
  int bits() const { return bits_; }
  int group_size() const { return group_size_; }
  Dtype scale_dtype() const { return scale_dtype_; }
  QuantMode mode() const { return mode_; }
  // Bytes the layout holds (memory accounting).
  virtual size_t bytes() const = 0;
  // The host memory of the layout (what wired memory pins), or null when it is not in
  // host memory.
  virtual const void* host_data() const = 0;

 protected:
  // A kernel view of this layout's shape and mode over the backend's contiguous buffers.
  kernels::QuantView view_over(const uint32_t* w, const void* scales, const void* biases) const {
    kernels::QuantView v;
    v.w = w;
    v.scales = scales;
    v.biases = biases;
    v.scale_dtype = scale_dtype_;
    v.n = n_;
    v.k = k_;
    v.bits = bits_;
    v.group_size = group_size_;
    v.mode = mode_;
    return v;
  }

 private:
  Device device_;
  int64_t n_, k_;
  int bits_, group_size_;
  Dtype scale_dtype_;
  QuantMode mode_;
};

// One weight of a prepared matmul over a shared input: y [m, w->n()] with row stride ldy.
struct PreparedMatmulTarget {
  const PreparedWeight* w = nullptr;
  float* y = nullptr;
  int64_t ldy = 0;
};

// One weight of a dense matmul over a shared input: y [m, w.n] with row stride ldy.
struct DenseMatmulTarget {
  kernels::DenseWeightView w;
  float* y = nullptr;
  int64_t ldy = 0;
};

enum class CopyDirection { host_to_device, device_to_host, device_to_device };
enum class BinaryKernel { add, sub, mul, div };
// Row reductions of lmx/core/ops/reduce.h (argmax gives i32 indices).
enum class ReduceKernel { sum, mean, max, min, logsumexp, argmax };

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  // Short name for logs and `lmx bench` (e.g. "cpu avx2", "cuda:0 NVIDIA H200").
  virtual std::string describe() const { return device().str(); }

  // Memory ------------------------------------------------------------------------
  virtual Allocator& allocator() = 0;
  // Copies `bytes` between host memory and this device, or within this device.
  virtual void copy_bytes(void* dst, const void* src, size_t bytes, CopyDirection direction) {
    (void)dst, (void)src, (void)bytes, (void)direction;
    no_kernel("copy");
  }

  // Wired memory on a device with its own memory (lmx/generate/wired_memory_backend.h):
  // device memory kept reserved for lmx. Free memory minus `reserve_bytes` (nullopt when
  // it cannot be queried); the bytes held reserved now; reserve `bytes` (returns why it
  // could not, or "" on success).
  virtual std::optional<size_t> recommended_working_set(size_t reserve_bytes) {
    (void)reserve_bytes;
    return std::nullopt;
  }
  virtual size_t reserved_pool_bytes() { return 0; }
  virtual std::string reserve_pool(size_t bytes) {
    (void)bytes;
    return "wired memory pool: not available on " + device().str();
  }

  // Waits until the work queued on this device is done (timing, and before the host reads
  // memory a kernel wrote). A backend that runs synchronously has nothing to wait for.
  virtual void synchronize() {}

  // Element-wise (contiguous f32; the strided generic loops are the CPU's) ---------
  virtual void binary_f32(BinaryKernel op, const float* a, const float* b, float* out, int64_t n) {
    (void)op, (void)a, (void)b, (void)out, (void)n;
    no_kernel("binary");
  }
  // Generic element-wise kernels over strided operands of any dtype (kernel_args.h,
  // ElementwiseArgs): what lmx/core's CPU loops do, for the other devices --------------
  // out = in[0] in out's dtype: bits copied when the dtypes match, integer to integer
  // through int64, anything else through double (Tensor::copy_'s rules).
  virtual void copy_strided(const kernels::ElementwiseArgs& args) {
    (void)args;
    no_kernel("copy");
  }
  virtual void unary(kernels::UnaryKernel op, const kernels::ElementwiseArgs& args) {
    (void)op, (void)args;
    no_kernel("unary");
  }
  virtual void binary(kernels::ArithmeticKernel op, const kernels::ElementwiseArgs& args) {
    (void)op, (void)args;
    no_kernel("binary");
  }
  virtual void compare(kernels::CompareKernel op, const kernels::ElementwiseArgs& args) {
    (void)op, (void)args;
    no_kernel("compare");
  }
  // out = in[0] != 0 ? in[1] : in[2].
  virtual void where(const kernels::ElementwiseArgs& args) {
    (void)args;
    no_kernel("where");
  }
  // data[0, n) = value, rounded as a store of a double to `dtype`.
  virtual void fill(void* data, Dtype dtype, int64_t n, double value) {
    (void)data, (void)dtype, (void)n, (void)value;
    no_kernel("fill");
  }
  // Row i of out = row ids[i] of src for i < count (rows of row_bytes bytes, contiguous;
  // ids in this device's memory, already checked to be in range).
  virtual void gather_rows(const void* src, int64_t row_bytes, const int64_t* ids, int64_t count, void* out) {
    (void)src, (void)row_bytes, (void)ids, (void)count, (void)out;
    no_kernel("take");
  }

  // y[r, :] += bias for r < rows: y [rows, n] contiguous, bias [n].
  virtual void add_bias(float* y, int64_t rows, int64_t n, const float* bias) {
    (void)y, (void)rows, (void)n, (void)bias;
    no_kernel("add_bias");
  }
  // out[i] = act(x[i]) (out may equal x).
  virtual void activation(kernels::Activation act, const float* x, float* out, int64_t n) {
    (void)act, (void)x, (void)out, (void)n;
    no_kernel("activation");
  }
  // out[i] = act(gate[i]) * up[i].
  virtual void activation_mul(kernels::Activation act, const float* gate, const float* up, float* out, int64_t n) {
    (void)act, (void)gate, (void)up, (void)out, (void)n;
    no_kernel("gated_activation");
  }
  // The first index of the maximum of x[0, n), n >= 1, as std::max_element picks it.
  virtual int64_t argmax_f32(const float* x, int64_t n) {
    (void)x, (void)n;
    no_kernel("argmax");
  }

  // Linear algebra (f32 activations and outputs) -----------------------------------
  virtual void gemm_f32(const kernels::GemmArgs& args) {
    (void)args;
    no_kernel("matmul");
  }
  // y[i, :] = x[i, :] @ W^T for i < m (x row stride ldx, y row stride ldy).
  virtual void matmul_nt(
      const float* x, int64_t ldx, const kernels::DenseWeightView& w, float* y, int64_t ldy, int64_t m) {
    (void)x, (void)ldx, (void)w, (void)y, (void)ldy, (void)m;
    no_kernel("linear");
  }
  // matmul_nt for each target over one x (a decode step's q / k / v or gate / up), so the
  // backend can cover them in one launch. By default one matmul_nt each.
  virtual void matmul_nt_targets(const float* x, int64_t ldx, std::span<const DenseMatmulTarget> targets, int64_t m) {
    for (const DenseMatmulTarget& t : targets) matmul_nt(x, ldx, t.w, t.y, t.ldy, m);
  }
  // The same with W MLX-quantized, read as stored.
  virtual void quantized_matmul(
      const float* x, int64_t ldx, const kernels::QuantView& w, float* y, int64_t ldy, int64_t m) {
    (void)x, (void)ldx, (void)w, (void)y, (void)ldy, (void)m;
    no_kernel("quantized_linear");
  }
  // The same for each target, from the backend's own layout. One call may cover several
  // weights that read the same x (q/k/v, gate/up), so the backend can share the work.
  virtual void prepared_matmul(const float* x,
                               int64_t ldx,
                               std::span<const PreparedMatmulTarget> targets,
                               int64_t m,
                               kernels::ActivationPrecision activations) {
    (void)x, (void)ldx, (void)targets, (void)m, (void)activations;
    no_kernel("quantized_linear (prepared)");
  }
  // One row each: prepared_matmul(xs[i], 0, {targets[i]}, 1, activations) for every i, each
  // weight over its own input (a decode token's chosen experts), so the backend can cover
  // them in one launch. By default one prepared_matmul each.
  virtual void prepared_matvec_each(std::span<const float* const> xs,
                                    std::span<const PreparedMatmulTarget> targets,
                                    kernels::ActivationPrecision activations) {
    for (size_t i = 0; i < targets.size(); ++i) prepared_matmul(xs[i], 0, {&targets[i], 1}, 1, activations);
  }

  // y_t = x @ W_t^T for each target over one row x that `in` makes inside the linears' first
  // pass (kernels::InputPrologue: the norm or gated activation before a decode step's
  // linears, without a launch of its own). Dense or prepared targets, not both. False,
  // having done nothing, where the backend has no such kernel for them (the caller then
  // makes x first and runs the linears as usual).
  virtual bool linears_with_prologue(const kernels::InputPrologue& in, std::span<const DenseMatmulTarget> dense,
                                     std::span<const PreparedMatmulTarget> prepared) {
    (void)in, (void)dense, (void)prepared;
    return false;
  }

  // Each product's y = x @ dequant(w) from the MLX layout (kernels::QuantVecmat), so the
  // backend can cover them in one launch.
  virtual void quantized_vecmat(std::span<const kernels::QuantVecmat> products) {
    (void)products;
    no_kernel("quantized_bmm");
  }

  // Quantized weights ---------------------------------------------------------------
  virtual std::shared_ptr<const PreparedWeight> prepare_quantized(const kernels::QuantView& w) {
    (void)w;
    no_kernel("prepare quantized weight");
  }
  // The MLX tensors back (contiguous): out_w [n, k*bits/32], scales / biases [n, k/group]
  // (out_biases is null unless the weight is affine).
  virtual void unpack_prepared(const PreparedWeight& w, uint32_t* out_w, void* out_scales, void* out_biases) {
    (void)w, (void)out_w, (void)out_scales, (void)out_biases;
    no_kernel("unpack quantized weight");
  }
  // Rows [r0, r1) of dequant(W) into out (row stride ldo), from the MLX layout or the
  // prepared one (the same values bit for bit).
  virtual void dequantize(const kernels::QuantView& w, int64_t r0, int64_t r1, float* out, int64_t ldo) {
    (void)w, (void)r0, (void)r1, (void)out, (void)ldo;
    no_kernel("dequantize");
  }
  virtual void dequantize_prepared(const PreparedWeight& w, int64_t r0, int64_t r1, float* out, int64_t ldo) {
    (void)w, (void)r0, (void)r1, (void)out, (void)ldo;
    no_kernel("dequantize (prepared)");
  }
  // Quantizes w [n, k] (contiguous f32) as mlx.core.quantize does.
  virtual void quantize_affine(const float* w,
                               int64_t n,
                               int64_t k,
                               int bits,
                               int group_size,
                               uint32_t* out_w,
                               void* out_scales,
                               void* out_biases,
                               Dtype scale_dtype) {
    (void)w, (void)n, (void)k, (void)bits, (void)group_size, (void)out_w, (void)out_scales,
        (void)out_biases, (void)scale_dtype;
    no_kernel("quantize");
  }
  // Quantizes w [n, k] (contiguous f32) in a floating-point mode (mxfp4, mxfp8, nvfp4) as
  // mlx.core.quantize does: out_w [n, k*bits/32], out_scales u8 [n, k/group].
  virtual void quantize_fp(
      const float* w, int64_t n, int64_t k, QuantMode mode, uint32_t* out_w, uint8_t* out_scales) {
    (void)w, (void)n, (void)k, (void)mode, (void)out_w, (void)out_scales;
    no_kernel("quantize (floating-point modes)");
  }

  // Neural-network kernels (f32 rows: x [rows, dim] with row stride ldx) -------------
  virtual void softmax(const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo, bool log) {
    (void)x, (void)rows, (void)dim, (void)ldx, (void)out, (void)ldo;
    no_kernel(log ? "log_softmax" : "softmax");
  }
  virtual void rms_norm(const float* x,
                        int64_t rows,
                        int64_t dim,
                        int64_t ldx,
                        float* out,
                        int64_t ldo,
                        const kernels::RmsNormOptions& options) {
    (void)x, (void)rows, (void)dim, (void)ldx, (void)out, (void)ldo, (void)options;
    no_kernel("rms_norm");
  }
  virtual void layer_norm(const float* x,
                          int64_t rows,
                          int64_t dim,
                          int64_t ldx,
                          float* out,
                          int64_t ldo,
                          const kernels::LayerNormOptions& options) {
    (void)x, (void)rows, (void)dim, (void)ldx, (void)out, (void)ldo, (void)options;
    no_kernel("layer_norm");
  }
  virtual void rope(const float* x, float* out, const kernels::RopeOptions& options) {
    (void)x, (void)out, (void)options;
    no_kernel("rope");
  }
  virtual void attention(const kernels::AttentionArgs& args, const kernels::AttentionOptions& options) {
    (void)args, (void)options;
    no_kernel("scaled_dot_product_attention");
  }
  virtual void quantized_attention(const kernels::QuantizedAttentionArgs& args,
                                   const kernels::AttentionOptions& options) {
    (void)args, (void)options;
    no_kernel("quantized_scaled_dot_product_attention");
  }
  // out[r] = reduction of x[r * n, (r + 1) * n) for r < rows: x contiguous f32 / f16 / bf16,
  // out of x's dtype (i32 for argmax), computed as lmx/core/ops/reduce.cpp does (sums in
  // f64, NaN wins max / min / argmax, the first maximum's index). The CPU path runs in
  // reduce.cpp itself; other backends fill this in.
  virtual void reduce_rows(ReduceKernel kind, const void* x, Dtype dtype, int64_t rows, int64_t n, void* out) {
    (void)kind, (void)x, (void)dtype, (void)rows, (void)n, (void)out;
    no_kernel("reduce");
  }
  // Recurrent scans (lmx/core/ops/ssm.h).
  virtual void ssm_scan(const kernels::SsmScanArgs& args) {
    (void)args;
    no_kernel("ssm_scan");
  }
  virtual void gated_delta_scan(const kernels::GatedDeltaArgs& args) {
    (void)args;
    no_kernel("gated_delta_scan");
  }

  // Losses -------------------------------------------------------------------------
  virtual void cross_entropy_grad(const kernels::CrossEntropyGradArgs& args) {
    (void)args;
    no_kernel("cross_entropy_grad");
  }

  // Tensor parallelism -------------------------------------------------------------
  // Collectives among ranks on `devices` (indices of this backend's device type), one rank
  // each: NCCL on CUDA. lmx::DeviceGroup (lmx/core/communicator.h) makes communicators of
  // them. Throws Unsupported where the backend has none (the CPU's ranks use a ThreadGroup).
  virtual std::unique_ptr<DeviceCollectives> make_collectives(const std::vector<int>& devices);

  // Optimizers ---------------------------------------------------------------------
  virtual void adam_step(const kernels::AdamStepArgs& args) {
    (void)args;
    no_kernel("adam_step");
  }

 protected:
  [[noreturn]] void no_kernel(const char* op) const {
    throw Unsupported(std::string(op) + ": no kernel for device " + device().str() + " in this build");
  }
};

// The backend of `device`. Throws Unsupported for a device this build or machine lacks.
Backend& backend_for(Device device);

// The one device of an op's inputs; throws InvalidArgument naming the op and both devices
// when they differ (ops never copy between devices on their own: move tensors with .to()).
Device common_device(const char* op, std::initializer_list<Device> devices);

// Whether this build has the CUDA backend (-DLMX_CUDA=ON); a machine may still have no GPU.
bool built_with_cuda();

namespace detail {
// Defined by the backend libraries (lmx/backend/cpu, lmx/backend/cuda); lmx_core links them
// (cuda_backend only in builds with -DLMX_CUDA=ON).
Backend& cpu_backend();
Backend& cuda_backend(int index);
}  // namespace detail

}  // namespace lmx
