#include "lmx/core/ops/linalg.h"
#include "lmx/core/ops/linear_input.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "lmx/core/backend.h"
#include "lmx/base/error.h"
#include "lmx/core/detail/element_access.h"
#include "lmx/core/ops/elementwise.h"

namespace lmx::ops {
namespace {

void check_defined(const Tensor& t, const char* op, const char* what) {
  if (!t.defined()) throw InvalidArgument(std::string(op) + ": " + what + " is undefined");
}

// Rows of x as a contiguous f32 matrix [rows, k] (copy only when needed).
Tensor as_f32_rows(const Tensor& x) {
  Tensor f = x.dtype() == Dtype::f32 ? x : x.to(Dtype::f32);
  return f.contiguous().reshape({-1, x.dim(-1)});
}

// y += bias on every row, in place: y is the op's own fresh f32 output (contiguous).
// The bias is widened to f32 once (a bf16 bias through the generic add() took the
// per-element conversion path: 2% of Qwen's prefill).
Tensor add_bias(Tensor y, const Tensor& bias, const char* op) {
  if (!bias.defined()) return y;
  common_device(op, {y.device(), bias.device()});
  if (bias.ndim() != 1 || bias.dim(0) != y.dim(-1)) {
    throw ShapeError(std::string(op) + ": bias " + shape_str(bias.shape()) +
                     " does not match output features " + std::to_string(y.dim(-1)));
  }
  // The bias as f32: in place when it is f32 and contiguous, else widened into a
  // per-thread buffer (a tensor per call showed up in the decode profile).
  const float* bp = nullptr;
  const int64_t nb = bias.dim(0), stride = bias.strides()[0];
  if (bias.dtype() == Dtype::f32 && stride == 1) {
    bp = bias.data<float>();
  } else if (!bias.device().is_cpu()) {
    return add_bias(std::move(y), bias.to(Dtype::f32).contiguous(), op);
  } else {
    thread_local std::vector<float> widened;
    widened.resize(static_cast<size_t>(nb));
    for (int64_t j = 0; j < nb; ++j)
      widened[static_cast<size_t>(j)] = detail::load_as_float(bias.raw_data(), bias.dtype(), j * stride);
    bp = widened.data();
  }
  const int64_t n = y.dim(-1), rows = n == 0 ? 0 : y.numel() / n;
  backend_for(y.device()).add_bias(y.data<float>(), rows, n, bp);
  return y;
}

QuantActivations activations_from_env() {
  // int16 by default: x rounded per group with error <= amax / 65534 (~1e-5 relative on
  // a layer output), far closer to fp32 than MLX's own bf16 activations, and 10-20%
  // faster decode on 2 cores (docs/performance.md). f32 stays available, exact.
  const char* env = std::getenv("LMX_QUANT_ACTIVATIONS");
  if (!env) return QuantActivations::int16;
  const std::string v = env;
  if (v == "int16") return QuantActivations::int16;
  if (v == "int8") return QuantActivations::int8;
  if (v != "f32") throw InvalidArgument("LMX_QUANT_ACTIVATIONS must be f32, int16 or int8, got '" + v + "'");
  return QuantActivations::f32;
}

std::atomic<QuantActivations>& activations_setting() {
  static std::atomic<QuantActivations> setting{activations_from_env()};
  return setting;
}

kernels::ActivationPrecision prepared_activations() {
  switch (quant_activations()) {
    case QuantActivations::f32: return kernels::ActivationPrecision::f32;
    case QuantActivations::int16: return kernels::ActivationPrecision::int16;
    case QuantActivations::int8: return kernels::ActivationPrecision::int8;
  }
  return kernels::ActivationPrecision::f32;
}

}  // namespace

void set_quant_activations(QuantActivations precision) { activations_setting().store(precision); }
QuantActivations quant_activations() { return activations_setting().load(); }

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  check_defined(a_in, "matmul", "a");
  check_defined(b_in, "matmul", "b");
  const Device device = common_device("matmul", {a_in.device(), b_in.device()});
  if (a_in.ndim() == 0 || b_in.ndim() == 0) throw ShapeError("matmul: operands must be at least 1-D");
  Tensor a = a_in.ndim() == 1 ? a_in.unsqueeze(0) : a_in;
  Tensor b = b_in.ndim() == 1 ? b_in.unsqueeze(1) : b_in;
  const int64_t m = a.dim(-2), k = a.dim(-1), n = b.dim(-1);
  if (b.dim(-2) != k) {
    throw ShapeError("matmul: shapes " + shape_str(a_in.shape()) + " and " +
                     shape_str(b_in.shape()) + " do not align (" + std::to_string(k) +
                     " != " + std::to_string(b.dim(-2)) + ")");
  }
  Shape abatch(a.shape().begin(), a.shape().end() - 2), bbatch(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(abatch, bbatch, "matmul");
  Shape ashape = batch, bshape = batch, oshape = batch;
  ashape.insert(ashape.end(), {m, k});
  bshape.insert(bshape.end(), {k, n});
  oshape.insert(oshape.end(), {m, n});
  Tensor af = (a.dtype() == Dtype::f32 ? a : a.to(Dtype::f32)).expand(ashape);
  Tensor bf = (b.dtype() == Dtype::f32 ? b : b.to(Dtype::f32)).expand(bshape);
  // Flatten the batch dims: keep strides where they merge, else copy.
  const int64_t nb = shape_numel(batch);
  auto batch_stride = [&](Tensor& t) -> int64_t {
    // A batch stride exists when the batch dims form one arithmetic progression.
    const int nd = static_cast<int>(batch.size());
    int64_t stride = 0;
    bool first = true;
    int64_t expect = 0;
    for (int d = nd - 1; d >= 0; --d) {
      if (batch[d] == 1) continue;
      if (first) {
        stride = t.strides()[d];
        expect = stride * batch[d];
        first = false;
      } else {
        if (t.strides()[d] != expect) return -1;
        expect *= batch[d];
      }
    }
    return stride;
  };
  int64_t abs = batch_stride(af), bbs = batch_stride(bf);
  if (abs < 0) {
    af = af.contiguous();
    abs = m * k;
  }
  if (bbs < 0) {
    bf = bf.contiguous();
    bbs = k * n;
  }
  Tensor out = Tensor::empty(oshape, Dtype::f32, device);
  kernels::GemmArgs g;
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = af.data<float>();
  g.a_rs = af.strides()[af.ndim() - 2];
  g.a_cs = af.strides()[af.ndim() - 1];
  // A batch of A against one B, A's rows at one stride throughout (x [B, L, in] @ W):
  // one GEMM of nb * m rows (a batch of GEMMs sent cuBLAS down a slow path at k = 8).
  const bool fold = nb > 1 && bbs == 0 && abs == m * g.a_rs;
  g.b = bf.data<float>();
  g.b_rs = bf.strides()[bf.ndim() - 2];
  g.b_cs = bf.strides()[bf.ndim() - 1];
  g.c = out.data<float>();
  g.c_rs = n;
  g.c_cs = 1;
  g.batch = fold ? 1 : nb;
  if (fold) g.m = m * nb;
  g.a_bs = abs;
  g.b_bs = bbs;
  g.c_bs = m * n;
  if (out.numel() > 0) backend_for(device).gemm_f32(g);
  if (a_in.ndim() == 1 && b_in.ndim() == 1) return out.reshape({});
  if (a_in.ndim() == 1) return out.squeeze(-2);
  if (b_in.ndim() == 1) return out.squeeze(-1);
  return out;
}

namespace {

// weight checked against x for `op`, with unit column stride.
Tensor checked_dense_weight(const Tensor& x, const Tensor& weight, const char* op) {
  check_defined(weight, op, "weight");
  common_device(op, {x.device(), weight.device()});
  if (weight.ndim() != 2) throw ShapeError(std::string(op) + ": weight must be 2-D, got " + shape_str(weight.shape()));
  if (!is_floating(weight.dtype())) {
    throw InvalidArgument(std::string(op) + ": weight dtype " + std::string(dtype_name(weight.dtype())) +
                          " is not f32, f16 or bf16");
  }
  if (x.ndim() == 0 || x.dim(-1) != weight.dim(1)) {
    throw ShapeError(std::string(op) + ": input " + shape_str(x.shape()) + " does not match weight " +
                     shape_str(weight.shape()) + " (in features " + std::to_string(weight.dim(1)) + ")");
  }
  return weight.strides()[1] == 1 ? weight : weight.contiguous();
}

Tensor empty_output(const Tensor& x, int64_t n) {
  Shape oshape = x.shape();
  oshape.back() = n;
  return Tensor::empty(oshape, Dtype::f32, x.device());
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_defined(x, "linear", "input");
  Tensor w = checked_dense_weight(x, weight, "linear");
  Tensor rows = as_f32_rows(x);
  Tensor out = empty_output(x, weight.dim(0));
  kernels::DenseWeightView view{w.raw_data(), w.dtype(), w.dim(0), w.dim(1), w.strides()[0]};
  if (out.numel() > 0) {
    backend_for(x.device()).matmul_nt(rows.data<float>(), rows.dim(1), view, out.data<float>(), weight.dim(0),
                                      rows.dim(0));
  }
  return add_bias(out, bias, "linear");
}

std::vector<Tensor> linears(const Tensor& x, std::span<const Tensor* const> weights, std::span<const Tensor> biases) {
  if (biases.size() != weights.size()) {
    throw InvalidArgument("linears: " + std::to_string(weights.size()) + " weights but " +
                          std::to_string(biases.size()) + " biases");
  }
  check_defined(x, "linears", "input");
  std::vector<Tensor> ws, outs;
  std::vector<DenseMatmulTarget> targets;
  for (const Tensor* weight : weights) {
    ws.push_back(checked_dense_weight(x, *weight, "linears"));
    const Tensor& w = ws.back();
    outs.push_back(empty_output(x, w.dim(0)));
    targets.push_back({{w.raw_data(), w.dtype(), w.dim(0), w.dim(1), w.strides()[0]}, outs.back().data<float>(),
                       w.dim(0)});
  }
  Tensor rows = as_f32_rows(x);
  if (rows.numel() > 0 && !targets.empty())
    backend_for(x.device()).matmul_nt_targets(rows.data<float>(), rows.dim(1), targets, rows.dim(0));
  for (size_t i = 0; i < weights.size(); ++i) outs[i] = add_bias(outs[i], biases[i], "linears");
  return outs;
}

Tensor quantized_linear(const Tensor& x, const QuantizedWeight& weight, const Tensor& bias) {
  check_defined(x, "quantized_linear", "input");
  weight.validate("quantized_linear");
  const Device device = common_device("quantized_linear", {x.device(), weight.device()});
  if (x.ndim() == 0 || x.dim(-1) != weight.in_features()) {
    throw ShapeError("quantized_linear: input " + shape_str(x.shape()) +
                     " does not match quantized weight with " +
                     std::to_string(weight.in_features()) + " input features");
  }
  Tensor rows = as_f32_rows(x);
  const int64_t n = weight.out_features();
  Shape oshape = x.shape();
  oshape.back() = n;
  Tensor out = Tensor::empty(oshape, Dtype::f32, device);
  if (out.numel() == 0) return out;
  Backend& backend = backend_for(device);
  if (weight.prepared) {
    const PreparedMatmulTarget target{weight.prepared.get(), out.data<float>(), n};
    backend.prepared_matmul(rows.data<float>(), rows.dim(1), {&target, 1}, rows.dim(0),
                            prepared_activations());
  } else {
    backend.quantized_matmul(rows.data<float>(), rows.dim(1), weight.view(), out.data<float>(), n,
                             rows.dim(0));
  }
  return add_bias(out, bias, "quantized_linear");
}

Tensor quantized_bmm(const Tensor& x, const QuantizedWeight& w, int64_t heads) {
  check_defined(x, "quantized_bmm", "input");
  w.validate("quantized_bmm");
  if (!w.has_mlx_tensors()) {
    throw InvalidArgument("quantized_bmm: the weight must hold its MLX tensors (not prepared)");
  }
  const Device device = common_device("quantized_bmm", {x.device(), w.device()});
  if (x.ndim() < 3 || heads <= 0 || x.dim(-3) != heads || heads * x.dim(-1) != w.out_features()) {
    throw ShapeError("quantized_bmm: input " + shape_str(x.shape()) + " does not match " + std::to_string(heads) +
                     " heads of a quantized [" + std::to_string(w.out_features()) + ", " +
                     std::to_string(w.in_features()) + "] weight");
  }
  const int64_t n = x.dim(-1), L = x.dim(-2), k = w.in_features();
  const Tensor xs = as_f32_rows(x);  // [outer * H * L, n]
  Shape oshape = x.shape();
  oshape.back() = k;
  Tensor out = Tensor::empty(oshape, Dtype::f32, device);
  const int64_t rows = xs.dim(0);
  if (rows == 0 || k == 0) return out;
  const kernels::QuantView v = w.view();
  const int64_t sbytes = v.s_row_stride() * static_cast<int64_t>(dtype_size(v.scale_dtype));
  std::vector<kernels::QuantVecmat> products(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t r0 = ((i / L) % heads) * n;  // the head's first row of w
    kernels::QuantVecmat& p = products[static_cast<size_t>(i)];
    p.x = xs.data<float>() + i * n;
    p.y = out.data<float>() + i * k;
    p.w = v;
    p.w.n = n;
    p.w.w_stride = v.w_row_stride();
    p.w.s_stride = v.s_row_stride();
    p.w.w = v.w + r0 * v.w_row_stride();
    p.w.scales = static_cast<const uint8_t*>(v.scales) + r0 * sbytes;
    if (v.biases) p.w.biases = static_cast<const uint8_t*>(v.biases) + r0 * sbytes;
  }
  backend_for(device).quantized_vecmat(products);
  return out;
}

std::vector<Tensor> quantized_linears(const Tensor& x,
                                      std::span<const QuantizedWeight* const> weights,
                                      std::span<const Tensor> biases) {
  if (biases.size() != weights.size()) {
    throw InvalidArgument("quantized_linears: " + std::to_string(weights.size()) + " weights but " +
                          std::to_string(biases.size()) + " biases");
  }
  check_defined(x, "quantized_linears", "input");
  const int64_t nrows = x.ndim() == 0 || x.dim(-1) == 0 ? 0 : x.numel() / x.dim(-1);
  bool shared = nrows > 0 && nrows < 4 && !weights.empty();
  for (const QuantizedWeight* w : weights)
    shared = shared && w->prepared && w->in_features() == x.dim(-1) && w->out_features() > 0 &&
             w->device() == x.device();
  std::vector<Tensor> outs;
  outs.reserve(weights.size());
  if (!shared) {
    for (size_t i = 0; i < weights.size(); ++i)
      outs.push_back(quantized_linear(x, *weights[i], biases[i]));
    return outs;
  }
  Tensor rows = as_f32_rows(x);
  std::vector<PreparedMatmulTarget> targets;
  for (const QuantizedWeight* w : weights) {
    w->validate("quantized_linears");
    Shape oshape = x.shape();
    oshape.back() = w->out_features();
    outs.push_back(Tensor::empty(oshape, Dtype::f32, x.device()));
    targets.push_back({w->prepared.get(), outs.back().data<float>(), w->out_features()});
  }
  backend_for(x.device())
      .prepared_matmul(rows.data<float>(), rows.dim(1), targets, rows.dim(0), prepared_activations());
  for (size_t i = 0; i < weights.size(); ++i)
    outs[i] = add_bias(outs[i], biases[i], "quantized_linears");
  return outs;
}

std::vector<Tensor> quantized_linears_each(std::span<const Tensor* const> xs,
                                           std::span<const QuantizedWeight* const> weights,
                                           std::span<const Tensor> biases) {
  if (xs.size() != weights.size() || biases.size() != weights.size()) {
    throw InvalidArgument("quantized_linears_each: " + std::to_string(xs.size()) + " inputs, " +
                          std::to_string(weights.size()) + " weights and " + std::to_string(biases.size()) +
                          " biases");
  }
  bool each = !weights.empty();
  for (size_t i = 0; i < weights.size(); ++i) {
    check_defined(*xs[i], "quantized_linears_each", "input");
    const Tensor& x = *xs[i];
    each = each && x.ndim() > 0 && x.numel() == x.dim(-1) && weights[i]->prepared &&
           weights[i]->in_features() == x.dim(-1) && weights[i]->out_features() > 0 &&
           weights[i]->device() == x.device() && x.device() == xs[0]->device();
  }
  std::vector<Tensor> outs;
  outs.reserve(weights.size());
  if (!each) {
    for (size_t i = 0; i < weights.size(); ++i) outs.push_back(quantized_linear(*xs[i], *weights[i], biases[i]));
    return outs;
  }
  std::vector<Tensor> rows;
  std::vector<const float*> ptrs;
  std::vector<PreparedMatmulTarget> targets;
  for (size_t i = 0; i < weights.size(); ++i) {
    weights[i]->validate("quantized_linears_each");
    size_t j = 0;
    while (j < i && xs[j] != xs[i]) ++j;  // the same tensor: the same rows
    rows.push_back(j < i ? rows[j] : as_f32_rows(*xs[i]));
    ptrs.push_back(rows.back().data<float>());
    Shape oshape = xs[i]->shape();
    oshape.back() = weights[i]->out_features();
    outs.push_back(Tensor::empty(oshape, Dtype::f32, xs[i]->device()));
    targets.push_back({weights[i]->prepared.get(), outs.back().data<float>(), weights[i]->out_features()});
  }
  backend_for(xs[0]->device()).prepared_matvec_each(ptrs, targets, prepared_activations());
  for (size_t i = 0; i < weights.size(); ++i) outs[i] = add_bias(outs[i], biases[i], "quantized_linears_each");
  return outs;
}

}  // namespace lmx::ops

namespace lmx::ops {

std::optional<std::vector<Tensor>> linears_with_prologue(const LinearInput& in,
                                                         std::span<const Tensor* const> dense,
                                                         std::span<const QuantizedWeight* const> quantized,
                                                         std::span<const Tensor> biases) {
  const Tensor& x = in.x_;
  if (!in.deferred() || in.value_.defined() || dense.empty() == quantized.empty() ||
      biases.size() != dense.size() + quantized.size() || !x.defined() || x.device().is_cpu() || x.ndim() == 0) {
    return std::nullopt;
  }
  const int64_t k = x.dim(-1);
  auto plain = [&](const Tensor& t) {
    return t.dtype() == Dtype::f32 && t.is_contiguous() && t.shape() == x.shape() && t.device() == x.device();
  };
  if (k == 0 || x.numel() != k || !plain(x) || (in.other_.defined() && !plain(in.other_))) return std::nullopt;
  kernels::InputPrologue p;
  p.x = x.data<float>();
  p.k = k;
  Tensor sum;
  if (in.kind_ == LinearInput::Kind::gated) {
    if (!in.other_.defined()) return std::nullopt;
    p.kind = kernels::InputPrologue::Kind::gated;
    p.up = in.other_.data<float>();
    p.act = kernel_activation(in.act_);
  } else {
    const Tensor& w = in.weight_;
    if (w.defined() && (w.ndim() != 1 || w.dim(0) != k || !w.is_contiguous() || w.device() != x.device() ||
                        !is_floating(w.dtype()))) {
      return std::nullopt;
    }
    p.kind = kernels::InputPrologue::Kind::rms_norm;
    if (w.defined()) p.norm.weight = {w.raw_data(), w.dtype()};
    p.norm.add_unit_offset = in.unit_offset_;
    p.norm.eps = in.eps_;
    if (in.other_.defined()) {
      sum = Tensor::empty(x.shape(), Dtype::f32, x.device());
      p.norm.residual = in.other_.data<float>();
      p.norm.sum = sum.data<float>();
    }
  }
  std::vector<Tensor> outs, ws;
  std::vector<DenseMatmulTarget> dense_targets;
  std::vector<PreparedMatmulTarget> prepared_targets;
  for (const Tensor* weight : dense) {
    if (!weight->defined() || weight->device() != x.device() || weight->ndim() != 2 || weight->dim(1) != k ||
        weight->strides()[1] != 1 || weight->dim(0) == 0) {
      return std::nullopt;
    }
    const Tensor& w = *weight;
    outs.push_back(empty_output(x, w.dim(0)));
    dense_targets.push_back({{w.raw_data(), w.dtype(), w.dim(0), w.dim(1), w.strides()[0]}, outs.back().data<float>(),
                             w.dim(0)});
  }
  for (const QuantizedWeight* w : quantized) {
    if (!w->prepared || w->in_features() != k || w->out_features() == 0 || w->device() != x.device()) {
      return std::nullopt;
    }
    outs.push_back(empty_output(x, w->out_features()));
    prepared_targets.push_back({w->prepared.get(), outs.back().data<float>(), w->out_features()});
  }
  if (!backend_for(x.device()).linears_with_prologue(p, dense_targets, prepared_targets)) return std::nullopt;
  if (in.sum_ && sum.defined()) *in.sum_ = sum;
  for (size_t i = 0; i < outs.size(); ++i) outs[i] = add_bias(outs[i], biases[i], "linears");
  return outs;
}

}  // namespace lmx::ops
