// The CPU's entries in the backend table (lmx/core/backend.h): each forwards to the
// kernels of this folder with the process-wide thread pool.
#include <algorithm>
#include <memory>
#include <vector>

#include "lmx/backend/cpu/activations.h"
#include "lmx/backend/cpu/argmax.h"
#include "lmx/backend/cpu/attention.h"
#include "lmx/backend/cpu/attention_quantized.h"
#include "lmx/backend/cpu/cpu_allocator.h"
#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/matmul.h"
#include "lmx/backend/cpu/norm.h"
#include "lmx/backend/cpu/optimizer_step.h"
#include "lmx/backend/cpu/quant_fp.h"
#include "lmx/backend/cpu/quantized.h"
#include "lmx/backend/cpu/rope.h"
#include "lmx/backend/cpu/softmax.h"
#include "lmx/backend/cpu/ssm_scan.h"
#include "lmx/base/thread_pool.h"
#include "lmx/core/backend.h"

namespace lmx::cpu {
namespace {

// The CPU's prepared layout: the rows repacked for the fast kernels (quant_pack.cpp).
class CpuPreparedWeight final : public PreparedWeight {
 public:
  explicit CpuPreparedWeight(PackedQuantWeight packed)
      : PreparedWeight(Device::cpu(), packed.n(), packed.k(), packed.bits(), packed.group_size(),
                       packed.scale_dtype()),
        packed_(std::move(packed)) {}
  size_t bytes() const override { return packed_.bytes(); }
  const void* host_data() const override { return packed_.data(); }
  const PackedQuantWeight& packed() const { return packed_; }

 private:
  PackedQuantWeight packed_;
};

const PackedQuantWeight& packed_of(const PreparedWeight& w) {
  LMX_ASSERT(w.device().is_cpu() && w.mode() == QuantMode::affine);
  return static_cast<const CpuPreparedWeight&>(w).packed();
}

// The floating-point modes keep the MLX layout (their kernels read it as stored), copied
// into one buffer: the words, then the scale codes.
class CpuFpPreparedWeight final : public PreparedWeight {
 public:
  explicit CpuFpPreparedWeight(const kernels::QuantView& w)
      : PreparedWeight(Device::cpu(), w.n, w.k, w.bits, w.group_size, Dtype::u8, w.mode),
        words_(w.k * w.bits / 32),
        groups_(w.k / w.group_size),
        data_(static_cast<size_t>(w.n * words_ + (w.n * groups_ + 3) / 4)) {
    for (int64_t r = 0; r < w.n; ++r) {
      std::copy_n(w.w + r * w.w_row_stride(), words_, data_.data() + r * words_);
      std::copy_n(static_cast<const uint8_t*>(w.scales) + r * w.s_row_stride(), groups_, scales() + r * groups_);
    }
  }
  size_t bytes() const override { return data_.size() * sizeof(uint32_t); }
  const void* host_data() const override { return data_.data(); }
  kernels::QuantView view() const { return view_over(data_.data(), scales(), nullptr); }

 private:
  uint8_t* scales() { return reinterpret_cast<uint8_t*>(data_.data() + n() * words_); }
  const uint8_t* scales() const { return reinterpret_cast<const uint8_t*>(data_.data() + n() * words_); }
  int64_t words_, groups_;
  std::vector<uint32_t> data_;
};

kernels::QuantView fp_view_of(const PreparedWeight& w) {
  LMX_ASSERT(w.device().is_cpu() && w.mode() != QuantMode::affine);
  return static_cast<const CpuFpPreparedWeight&>(w).view();
}

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::cpu(); }
  std::string describe() const override { return std::string("cpu ") + active_cpu_tier_description(); }
  Allocator& allocator() override { return cpu_allocator(); }
  void copy_bytes(void* dst, const void* src, size_t bytes, CopyDirection) override {
    std::copy_n(static_cast<const char*>(src), bytes, static_cast<char*>(dst));
  }

  void add_bias(float* y, int64_t rows, int64_t n, const float* bias) override {
    // Rows split over the pool, at least ~64K elements per range.
    ThreadPool::global().parallel_for(rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, n)),
                                      [&](int64_t r0, int64_t r1) {
                                        for (int64_t r = r0; r < r1; ++r)
                                          for (int64_t j = 0; j < n; ++j) y[r * n + j] += bias[j];
                                      });
  }
  void activation(kernels::Activation act, const float* x, float* out, int64_t n) override {
    cpu::activation(act, x, out, n, ThreadPool::global());
  }
  void activation_mul(kernels::Activation act, const float* gate, const float* up, float* out,
                      int64_t n) override {
    cpu::activation_mul(act, gate, up, out, n, ThreadPool::global());
  }
  int64_t argmax_f32(const float* x, int64_t n) override { return cpu::argmax(x, n); }

  void gemm_f32(const kernels::GemmArgs& args) override { cpu::gemm_f32(args); }
  void matmul_nt(const float* x, int64_t ldx, const kernels::DenseWeightView& w, float* y, int64_t ldy,
                 int64_t m) override {
    cpu::matmul_nt(x, ldx, w, y, ldy, m);
  }
  void quantized_matmul(const float* x, int64_t ldx, const kernels::QuantView& w, float* y, int64_t ldy,
                        int64_t m) override {
    if (w.mode != QuantMode::affine) cpu::quantized_matmul_fp(x, ldx, w, y, ldy, m);
    else cpu::quantized_matmul(x, ldx, w, y, ldy, m);
  }
  void prepared_matmul(const float* x, int64_t ldx, std::span<const PreparedMatmulTarget> targets, int64_t m,
                       kernels::ActivationPrecision activations) override {
    QuantMatmulOptions opts;
    opts.activations = activations;
    const bool any_fp = std::any_of(targets.begin(), targets.end(),
                                    [](const PreparedMatmulTarget& t) { return t.w->mode() != QuantMode::affine; });
    if (any_fp) {
      for (const PreparedMatmulTarget& t : targets) {
        if (t.w->mode() != QuantMode::affine) cpu::quantized_matmul_fp(x, ldx, fp_view_of(*t.w), t.y, t.ldy, m);
        else cpu::quantized_matmul(x, ldx, packed_of(*t.w), t.y, t.ldy, m, opts);
      }
      return;
    }
    if (targets.size() == 1) {
      const PreparedMatmulTarget& t = targets[0];
      cpu::quantized_matmul(x, ldx, packed_of(*t.w), t.y, t.ldy, m, opts);
      return;
    }
    std::vector<QuantMatmulTarget> cpu_targets;
    cpu_targets.reserve(targets.size());
    for (const PreparedMatmulTarget& t : targets) cpu_targets.push_back({&packed_of(*t.w), t.y, t.ldy});
    cpu::quantized_matmul(x, ldx, cpu_targets, m, opts);
  }
  void prepared_matvec_each(std::span<const float* const> xs, std::span<const PreparedMatmulTarget> targets,
                            kernels::ActivationPrecision activations) override {
    const bool any_fp = std::any_of(targets.begin(), targets.end(),
                                    [](const PreparedMatmulTarget& t) { return t.w->mode() != QuantMode::affine; });
    if (any_fp || targets.size() == 1) {
      Backend::prepared_matvec_each(xs, targets, activations);
      return;
    }
    QuantMatmulOptions opts;
    opts.activations = activations;
    std::vector<QuantMatmulTarget> cpu_targets;
    cpu_targets.reserve(targets.size());
    for (const PreparedMatmulTarget& t : targets) cpu_targets.push_back({&packed_of(*t.w), t.y, t.ldy});
    cpu::quantized_matvec_each(xs, cpu_targets, opts);
  }

  void quantized_vecmat(std::span<const kernels::QuantVecmat> products) override {
    cpu::quantized_vecmat(products);
  }

  std::shared_ptr<const PreparedWeight> prepare_quantized(const kernels::QuantView& w) override {
    if (w.mode != QuantMode::affine) return std::make_shared<const CpuFpPreparedWeight>(w);
    return std::make_shared<const CpuPreparedWeight>(pack_quantized(w));
  }
  void unpack_prepared(const PreparedWeight& w, uint32_t* out_w, void* out_scales, void* out_biases) override {
    if (w.mode() != QuantMode::affine) {
      const kernels::QuantView v = fp_view_of(w);
      std::copy_n(v.w, v.n * v.w_row_stride(), out_w);
      std::copy_n(static_cast<const uint8_t*>(v.scales), v.n * v.s_row_stride(), static_cast<uint8_t*>(out_scales));
      return;
    }
    unpack_quantized(packed_of(w), out_w, out_scales, out_biases);
  }
  void dequantize(const kernels::QuantView& w, int64_t r0, int64_t r1, float* out, int64_t ldo) override {
    parallel_rows(r0, r1, [&](int64_t b, int64_t e) {
      if (w.mode != QuantMode::affine) dequantize_fp(w, b, e, out + (b - r0) * ldo, ldo);
      else dequantize_affine(w, b, e, out + (b - r0) * ldo, ldo);
    });
  }
  void dequantize_prepared(const PreparedWeight& w, int64_t r0, int64_t r1, float* out, int64_t ldo) override {
    if (w.mode() != QuantMode::affine) {
      dequantize(fp_view_of(w), r0, r1, out, ldo);
      return;
    }
    const PackedQuantWeight& p = packed_of(w);
    parallel_rows(r0, r1, [&](int64_t b, int64_t e) { dequantize_packed(p, b, e, out + (b - r0) * ldo, ldo); });
  }
  void quantize_affine(const float* w, int64_t n, int64_t k, int bits, int group_size, uint32_t* out_w,
                       void* out_scales, void* out_biases, Dtype scale_dtype) override {
    cpu::quantize_affine(w, n, k, bits, group_size, out_w, out_scales, out_biases, scale_dtype);
  }
  void quantize_fp(const float* w, int64_t n, int64_t k, QuantMode mode, uint32_t* out_w,
                   uint8_t* out_scales) override {
    cpu::quantize_fp(w, n, k, mode, out_w, out_scales);
  }

  void softmax(const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo,
               bool log) override {
    (log ? cpu::log_softmax : cpu::softmax)(x, rows, dim, ldx, out, ldo, ThreadPool::global());
  }
  void rms_norm(const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo,
                const kernels::RmsNormOptions& options) override {
    cpu::rms_norm(x, rows, dim, ldx, out, ldo, options, ThreadPool::global());
  }
  void layer_norm(const float* x, int64_t rows, int64_t dim, int64_t ldx, float* out, int64_t ldo,
                  const kernels::LayerNormOptions& options) override {
    cpu::layer_norm(x, rows, dim, ldx, out, ldo, options, ThreadPool::global());
  }
  void rope(const float* x, float* out, const kernels::RopeOptions& options) override {
    cpu::rope(x, out, options, ThreadPool::global());
  }
  void attention(const kernels::AttentionArgs& args, const kernels::AttentionOptions& options) override {
    cpu::scaled_dot_product_attention(args, options, ThreadPool::global());
  }
  void quantized_attention(const kernels::QuantizedAttentionArgs& args,
                           const kernels::AttentionOptions& options) override {
    quantized_scaled_dot_product_attention(args, options, ThreadPool::global());
  }
  void ssm_scan(const kernels::SsmScanArgs& args) override { cpu::ssm_scan(args, ThreadPool::global()); }
  void gated_delta_scan(const kernels::GatedDeltaArgs& args) override {
    cpu::gated_delta_scan(args, ThreadPool::global());
  }
  void adam_step(const kernels::AdamStepArgs& args) override { cpu::adam_step(args); }
  void cross_entropy_grad(const kernels::CrossEntropyGradArgs& args) override {
    cpu::cross_entropy_grad(args, ThreadPool::global());
  }

 private:
  // Rows [r0, r1) split over the pool, at least 16 rows per range.
  template <typename Fn>
  static void parallel_rows(int64_t r0, int64_t r1, Fn&& fn) {
    ThreadPool::global().parallel_for(r1 - r0, 16, [&](int64_t b, int64_t e) { fn(r0 + b, r0 + e); });
  }
};

}  // namespace
}  // namespace lmx::cpu

namespace lmx::detail {

Backend& cpu_backend() {
  // Never destroyed: tensors held by other statics may be freed after main returns.
  static auto* backend = new cpu::CpuBackend();
  return *backend;
}

}  // namespace lmx::detail
