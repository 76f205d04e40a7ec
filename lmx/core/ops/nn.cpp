#include "lmx/core/ops/nn.h"

#include <cmath>
#include <string>

#include "lmx/base/error.h"
#include "lmx/core/backend.h"
#include "lmx/core/step_values.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/linear_input.h"

namespace lmx::ops {
namespace {

void check(const Tensor& t, const char* op, const char* what) {
  if (!t.defined()) throw InvalidArgument(std::string(op) + ": " + what + " is undefined");
  if (!is_floating(t.dtype())) {
    throw InvalidArgument(std::string(op) + ": " + what + " must be floating, got " +
                          std::string(dtype_name(t.dtype())));
  }
}

// f32 with unit stride in the last dimension and rows at a common stride: returns the
// matrix [rows, dim] and its row stride.
Tensor f32_rows(const Tensor& x) {
  Tensor f = x.dtype() == Dtype::f32 ? x : x.to(Dtype::f32);
  return f.contiguous().reshape({-1, x.dim(-1)});
}

kernels::ChannelVector channel(const Tensor& w, int64_t dim, const char* op, const char* what) {
  if (!w.defined()) return {};
  check(w, op, what);
  if (w.ndim() != 1 || w.dim(0) != dim) {
    throw ShapeError(std::string(op) + ": " + what + " " + shape_str(w.shape()) +
                     " does not match the last dimension " + std::to_string(dim));
  }
  if (!w.is_contiguous()) return channel(w.contiguous(), dim, op, what);
  return {w.raw_data(), w.dtype()};
}

// The sizes shared by the dense and the quantized attention arguments.
template <typename Args>
void set_attention_shape(Args& a, int64_t B, int64_t Hq, int64_t Hkv, int64_t Lq, int64_t Lkv, int64_t D,
                         int64_t Dv) {
  a.batch = B;
  a.q_heads = Hq;
  a.kv_heads = Hkv;
  a.q_len = Lq;
  a.kv_len = Lkv;
  a.head_dim = D;
  a.v_head_dim = Dv;
}

// The optional parts of attention (additive mask, sinks) as kernel options; the tensors
// they point into are kept alive here.
struct AttentionExtras {
  kernels::AttentionOptions options;
  Tensor mask, sinks;
};

AttentionExtras attention_extras(const AttentionParams& p, const char* op, int64_t B, int64_t Hq,
                                 int64_t Lq, int64_t Lkv, Device device) {
  AttentionExtras e;
  kernels::AttentionOptions& o = e.options;
  o.causal = p.causal;
  o.q_offset = p.q_offset;
  o.window = p.window;
  o.softcap = p.softcap;
  if (p.mask.defined()) {
    check(p.mask, op, "mask");
    common_device(op, {device, p.mask.device()});
    Shape full{B, Hq, Lq, Lkv};
    if (p.mask.ndim() > 4) throw ShapeError(std::string(op) + ": mask has more than 4 dims");
    try {
      e.mask = (p.mask.dtype() == Dtype::f32 ? p.mask : p.mask.to(Dtype::f32)).expand(full);
    } catch (const ShapeError&) {
      throw ShapeError(std::string(op) + ": mask " + shape_str(p.mask.shape()) +
                       " does not broadcast to " + shape_str(full));
    }
    if (e.mask.strides()[3] != 1 && Lkv > 1) e.mask = e.mask.contiguous();
    o.mask = e.mask.data<float>();
    for (int d = 0; d < 4; ++d) o.mask_strides[d] = e.mask.strides()[d];
  }
  if (p.sinks.defined()) {
    check(p.sinks, op, "sinks");
    common_device(op, {device, p.sinks.device()});
    if (p.sinks.ndim() != 1 || p.sinks.dim(0) != Hq) {
      throw ShapeError(std::string(op) + ": sinks " + shape_str(p.sinks.shape()) + " must be [" +
                       std::to_string(Hq) + "]");
    }
    e.sinks = p.sinks.to(Dtype::f32).contiguous();
    o.sinks = e.sinks.data<float>();
  }
  return e;
}

Tensor softmax_impl(const Tensor& x, int axis, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  check(x, op, "input");
  if (x.ndim() == 0) throw ShapeError(std::string(op) + ": input must be at least 1-D");
  const int nd = x.ndim();
  if (axis < -nd || axis >= nd) {
    throw InvalidArgument(std::string(op) + ": axis " + std::to_string(axis) + " out of range");
  }
  if (axis < 0) axis += nd;
  if (axis != nd - 1) return softmax_impl(x.transpose(axis, -1), -1, log).transpose(axis, -1);
  Tensor rows = f32_rows(x);
  Tensor out = Tensor::empty(x.shape(), Dtype::f32, x.device());
  if (out.numel() == 0) return out;
  backend_for(x.device())
      .softmax(rows.data<float>(), rows.dim(0), rows.dim(1), rows.dim(1), out.data<float>(), rows.dim(1), log);
  return out;
}

}  // namespace

Tensor softmax(const Tensor& x, int axis) { return softmax_impl(x, axis, false); }
Tensor log_softmax(const Tensor& x, int axis) { return softmax_impl(x, axis, true); }

Tensor cross_entropy_grad(const Tensor& logits, const Tensor& lse, const Tensor& targets, const Tensor& coef) {
  const char* op = "cross_entropy_grad";
  check(logits, op, "logits");
  check(lse, op, "lse");
  check(coef, op, "coef");
  if (!targets.defined() || targets.dtype() != Dtype::i64) throw InvalidArgument("cross_entropy_grad: targets must be i64");
  if (logits.ndim() != 2) throw ShapeError("cross_entropy_grad: logits must be [N, vocab], got " + shape_str(logits.shape()));
  const int64_t n = logits.dim(0);
  for (const Tensor* t : {&lse, &targets, &coef}) {
    if (t->numel() != n) {
      throw ShapeError("cross_entropy_grad: " + std::to_string(t->numel()) + " values for " + std::to_string(n) +
                       " rows of logits");
    }
  }
  const Device device = common_device(op, {logits.device(), lse.device(), targets.device(), coef.device()});
  Tensor l = f32_rows(logits), s = f32_rows(lse.reshape({n, 1})), c = f32_rows(coef.reshape({n, 1}));
  Tensor t = targets.contiguous();
  Tensor out = Tensor::empty(logits.shape(), Dtype::f32, device);
  if (out.numel() == 0) return out;
  kernels::CrossEntropyGradArgs a;
  a.logits = l.data<float>(), a.lse = s.data<float>(), a.targets = t.data<int64_t>(), a.coef = c.data<float>();
  a.out = out.data<float>(), a.rows = n, a.vocab = logits.dim(1);
  backend_for(device).cross_entropy_grad(a);
  return out;
}

namespace {

// The backend's rms_norm over x's rows; with a residual (same shape, f32), x + residual is
// written to *sum and normed in its place.
Tensor rms_norm_rows(const char* op, const Tensor& x, const Tensor* residual, const Tensor& weight, float eps,
                     bool add_unit_offset, Tensor* sum) {
  const Device device = common_device(op, {x.device(), residual ? residual->device() : x.device(),
                                           weight.defined() ? weight.device() : x.device()});
  Tensor rows = f32_rows(x);
  Tensor res = residual ? f32_rows(*residual) : Tensor();
  Tensor s = residual ? Tensor::empty(x.shape(), Dtype::f32, device) : Tensor();
  Tensor out = Tensor::empty(x.shape(), Dtype::f32, device);
  kernels::RmsNormOptions o;
  Tensor wc = weight.defined() ? weight.contiguous() : weight;
  o.weight = channel(wc, x.dim(-1), op, "weight");
  o.add_unit_offset = add_unit_offset;
  o.eps = eps;
  if (residual) {
    o.residual = res.data<float>();
    o.ld_residual = res.dim(1);
    o.sum = s.data<float>();
    o.ld_sum = rows.dim(1);
  }
  if (out.numel() > 0) {
    backend_for(device).rms_norm(rows.data<float>(), rows.dim(0), rows.dim(1), rows.dim(1), out.data<float>(),
                                 rows.dim(1), o);
  }
  if (sum) *sum = s;
  return out;
}

}  // namespace

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps, bool add_unit_offset) {
  check(x, "rms_norm", "input");
  if (x.ndim() == 0) throw ShapeError("rms_norm: input must be at least 1-D");
  return rms_norm_rows("rms_norm", x, nullptr, weight, eps, add_unit_offset, nullptr);
}

Tensor add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, float eps, bool add_unit_offset,
                    Tensor* sum) {
  if (!sum) throw InvalidArgument("add_rms_norm: sum must not be null");
  check(x, "add_rms_norm", "input");
  check(residual, "add_rms_norm", "residual");
  if (x.ndim() == 0 || x.shape() != residual.shape() || x.dtype() != Dtype::f32 || residual.dtype() != Dtype::f32) {
    *sum = add(x, residual);
    return rms_norm(*sum, weight, eps, add_unit_offset);
  }
  return rms_norm_rows("add_rms_norm", x, &residual, weight, eps, add_unit_offset, sum);
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  check(x, "layer_norm", "input");
  if (x.ndim() == 0) throw ShapeError("layer_norm: input must be at least 1-D");
  const Device device = common_device("layer_norm", {x.device(), weight.defined() ? weight.device() : x.device(),
                                                     bias.defined() ? bias.device() : x.device()});
  Tensor rows = f32_rows(x);
  Tensor out = Tensor::empty(x.shape(), Dtype::f32, device);
  kernels::LayerNormOptions o;
  Tensor wc = weight.defined() ? weight.contiguous() : weight;
  Tensor bc = bias.defined() ? bias.contiguous() : bias;
  o.weight = channel(wc, x.dim(-1), "layer_norm", "weight");
  o.bias = channel(bc, x.dim(-1), "layer_norm", "bias");
  o.eps = eps;
  if (out.numel() > 0) {
    backend_for(device).layer_norm(rows.data<float>(), rows.dim(0), rows.dim(1), rows.dim(1),
                                   out.data<float>(), rows.dim(1), o);
  }
  return out;
}

Tensor rope(const Tensor& x_in, const RopeParams& p) {
  check(x_in, "rope", "input");
  if (x_in.ndim() != 4) {
    throw ShapeError("rope: input must be [batch, heads, seq, head_dim], got " +
                     shape_str(x_in.shape()));
  }
  const int64_t head_dim = x_in.dim(3);
  const int64_t rd = p.rotary_dim == 0 ? head_dim : p.rotary_dim;
  if (rd <= 0 || rd > head_dim || rd % 2 != 0) {
    throw InvalidArgument("rope: rotary_dim " + std::to_string(rd) +
                          " must be even and in (0, head_dim = " + std::to_string(head_dim) + "]");
  }
  check(p.inv_freq, "rope", "inv_freq");
  if (p.inv_freq.ndim() != 1 || p.inv_freq.dim(0) != rd / 2) {
    throw ShapeError("rope: inv_freq " + shape_str(p.inv_freq.shape()) + " must hold rotary_dim/2 = " +
                     std::to_string(rd / 2) + " values");
  }
  if (p.offset < 0) throw InvalidArgument("rope: negative position offset " + std::to_string(p.offset));
  const Device device =
      p.batch_offsets.defined()
          ? common_device("rope", {x_in.device(), p.inv_freq.device(), p.batch_offsets.device()})
          : common_device("rope", {x_in.device(), p.inv_freq.device()});
  Tensor x = x_in.dtype() == Dtype::f32 ? x_in : x_in.to(Dtype::f32);
  if (x.strides()[3] != 1) x = x.contiguous();
  Tensor freqs = p.inv_freq.to(Dtype::f32).contiguous();
  Tensor out = Tensor::empty(x.shape(), Dtype::f32, device);
  if (out.numel() == 0) return out;
  kernels::RopeOptions o;
  o.batch = x.dim(0);
  o.heads = x.dim(1);
  o.seq = x.dim(2);
  o.head_dim = head_dim;
  for (int d = 0; d < 4; ++d) {
    o.x_strides[d] = x.strides()[d];
    o.out_strides[d] = out.strides()[d];
  }
  o.rotary_dim = rd;
  o.traditional = p.traditional;
  o.inv_freq = freqs.data<float>();
  o.offset = p.offset;
  o.mscale = p.mscale;
  Tensor batch_offsets;
  if (p.batch_offsets.defined()) {
    if (p.batch_offsets.dtype() != Dtype::i64 || p.batch_offsets.ndim() != 1 || p.batch_offsets.dim(0) != o.batch) {
      throw ShapeError("rope: batch_offsets must be i64 [" + std::to_string(o.batch) + "], got " +
                       std::string(dtype_name(p.batch_offsets.dtype())) + " " + shape_str(p.batch_offsets.shape()));
    }
    batch_offsets = p.batch_offsets.contiguous();
    o.batch_offsets = batch_offsets.data<int64_t>();
  }
  if (const StepValues* step = step_values(device)) {
    // A captured decode step: the position is read on the device. Any other rope would
    // bake this token's position into the graph.
    if (o.batch != 1 || o.seq != 1 || p.offset != step->host_position || o.batch_offsets) {
      throw Unsupported("rope: a captured decode step rotates one token at the step's position only");
    }
    o.positions = step->position;
  }
  backend_for(device).rope(x.data<float>(), out.data<float>(), o);
  return out;
}

Tensor scaled_dot_product_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                    const AttentionParams& p) {
  const char* op = "scaled_dot_product_attention";
  check(q_in, op, "q");
  check(k_in, op, "k");
  check(v_in, op, "v");
  if (q_in.ndim() != 4 || k_in.ndim() != 4 || v_in.ndim() != 4) {
    throw ShapeError(std::string(op) + ": q, k, v must be 4-D [batch, heads, seq, dim], got " +
                     shape_str(q_in.shape()) + ", " + shape_str(k_in.shape()) + ", " +
                     shape_str(v_in.shape()));
  }
  const int64_t B = q_in.dim(0), Hq = q_in.dim(1), Lq = q_in.dim(2), D = q_in.dim(3);
  const int64_t Hkv = k_in.dim(1), Lkv = k_in.dim(2), Dv = v_in.dim(3);
  if (k_in.dim(0) != B || v_in.dim(0) != B || k_in.dim(3) != D || v_in.dim(1) != Hkv ||
      v_in.dim(2) != Lkv || Hkv == 0 || Hq % Hkv != 0) {
    throw ShapeError(std::string(op) + ": incompatible q " + shape_str(q_in.shape()) + ", k " +
                     shape_str(k_in.shape()) + ", v " + shape_str(v_in.shape()) +
                     " (q heads must be a multiple of kv heads)");
  }
  if (k_in.dtype() != v_in.dtype()) {
    throw InvalidArgument(std::string(op) + ": k and v must share a dtype");
  }
  const Device device = common_device(op, {q_in.device(), k_in.device(), v_in.device()});
  if (p.window < 0 || p.q_offset < 0) {
    throw InvalidArgument(std::string(op) + ": window and q_offset must be >= 0");
  }
  Tensor q = q_in.dtype() == Dtype::f32 ? q_in : q_in.to(Dtype::f32);
  Tensor k = k_in, v = v_in;
  if (q.strides()[3] != 1) q = q.contiguous();
  if (k.strides()[3] != 1) k = k.contiguous();
  if (v.strides()[3] != 1) v = v.contiguous();
  Tensor out = Tensor::empty({B, Hq, Lq, Dv}, Dtype::f32, device);
  if (out.numel() == 0) return out;
  kernels::AttentionArgs a;
  set_attention_shape(a, B, Hq, Hkv, Lq, Lkv, D, Dv);
  a.q = q.data<float>();
  a.k = k.raw_data();
  a.v = v.raw_data();
  a.kv_dtype = k.dtype();
  a.out = out.data<float>();
  for (int d = 0; d < 4; ++d) {
    a.q_strides[d] = q.strides()[d];
    a.k_strides[d] = k.strides()[d];
    a.v_strides[d] = v.strides()[d];
    a.out_strides[d] = out.strides()[d];
  }
  AttentionExtras extras = attention_extras(p, op, B, Hq, Lq, Lkv, device);
  extras.options.scale = p.scale != 0.0f ? p.scale : 1.0f / std::sqrt(static_cast<float>(D));
  if (const StepValues* step = step_values(device)) {
    // A captured decode step: the key count is read on the device. Any other attention
    // would bake this token's key count into the graph.
    if (Lq != 1 || B != 1 || p.mask.defined() || p.q_offset != step->host_position || Lkv != p.q_offset + 1 ||
        step->kv_capacity < Lkv) {
      throw Unsupported(std::string(op) + ": a captured decode step attends one query over the cache only");
    }
  }  // the backend reads the position and the capacity from the step
  backend_for(device).attention(a, extras.options);
  return out;
}

Tensor quantized_scaled_dot_product_attention(const Tensor& q_in, const QuantizedKV& kv,
                                              const AttentionParams& p) {
  const char* op = "quantized_scaled_dot_product_attention";
  check(q_in, op, "q");
  if (q_in.ndim() != 4 || !kv.k_w.defined() || kv.k_w.ndim() != 4 || !kv.v_w.defined() ||
      kv.v_w.ndim() != 4) {
    throw ShapeError(std::string(op) + ": q and the quantized k / v must be 4-D, got q " +
                     shape_str(q_in.shape()));
  }
  const Device device = common_device(op, {q_in.device(), kv.k_w.device(), kv.k_scales.device(),
                                           kv.k_biases.device(), kv.v_w.device(), kv.v_scales.device(),
                                           kv.v_biases.device()});
  Tensor q = q_in.dtype() == Dtype::f32 && q_in.strides()[3] == 1 ? q_in : q_in.to(Dtype::f32).contiguous();
  const int64_t B = q.dim(0), Hq = q.dim(1), Lq = q.dim(2), D = q.dim(3);
  const int64_t Hkv = kv.k_w.dim(1), Lkv = kv.length();
  const int64_t Dv = kv.v_w.dim(3) * 32 / kv.v_bits;
  if (kv.k_w.dim(0) != B || Hkv == 0 || Hq % Hkv != 0 || kv.k_w.dim(3) * 32 / kv.k_bits != D ||
      kv.v_w.dim(1) != Hkv || kv.v_w.dim(2) != Lkv) {
    throw ShapeError(std::string(op) + ": q " + shape_str(q.shape()) + " does not fit quantized k " +
                     shape_str(kv.k_w.shape()) + " / v " + shape_str(kv.v_w.shape()));
  }
  Tensor out = Tensor::empty({B, Hq, Lq, Dv}, Dtype::f32, device);
  if (out.numel() == 0) return out;
  kernels::QuantizedAttentionArgs a;
  set_attention_shape(a, B, Hq, Hkv, Lq, Lkv, D, Dv);
  a.group_size = kv.group_size;
  a.q = q.data<float>();
  a.out = out.data<float>();
  for (int d = 0; d < 4; ++d) {
    a.q_strides[d] = q.strides()[d];
    a.out_strides[d] = out.strides()[d];
  }
  auto rows = [](kernels::QuantizedRows& r, const Tensor& w, const Tensor& s, const Tensor& b, int bits) {
    LMX_ASSERT(w.strides()[3] == 1 && s.strides()[3] == 1 && s.strides() == b.strides());
    r.w = w.data<uint32_t>();
    r.scales = s.data<float>();
    r.biases = b.data<float>();
    for (int d = 0; d < 3; ++d) {
      r.w_strides[d] = w.strides()[d];
      r.s_strides[d] = s.strides()[d];
    }
    r.bits = bits;
  };
  rows(a.k, kv.k_w, kv.k_scales, kv.k_biases, kv.k_bits);
  rows(a.v, kv.v_w, kv.v_scales, kv.v_biases, kv.v_bits);
  AttentionExtras extras = attention_extras(p, op, B, Hq, Lq, Lkv, device);
  extras.options.scale = p.scale;
  if (step_values(device)) throw Unsupported(std::string(op) + ": not in a captured decode step");
  backend_for(device).quantized_attention(a, extras.options);
  return out;
}

kernels::Activation kernel_activation(GatedActivation act) {
  return act == GatedActivation::silu   ? kernels::Activation::silu
         : act == GatedActivation::gelu ? kernels::Activation::gelu
                                        : kernels::Activation::gelu_tanh;
}

namespace {

void check_gated(const Tensor& gate, const Tensor& up, const char* op) {
  check(gate, op, "gate");
  check(up, op, "up");
  common_device(op, {gate.device(), up.device()});
  if (gate.shape() != up.shape()) {
    throw ShapeError(std::string(op) + ": gate " + shape_str(gate.shape()) + " and up " + shape_str(up.shape()) +
                     " differ");
  }
}

}  // namespace

Tensor gated_activation(GatedActivation act, const Tensor& gate, const Tensor& up) {
  check_gated(gate, up, "gated_activation");
  Tensor g = (gate.dtype() == Dtype::f32 ? gate : gate.to(Dtype::f32)).contiguous();
  Tensor u = (up.dtype() == Dtype::f32 ? up : up.to(Dtype::f32)).contiguous();
  Tensor out = Tensor::empty(gate.shape(), Dtype::f32, gate.device());
  backend_for(gate.device())
      .activation_mul(kernel_activation(act), g.data<float>(), u.data<float>(), out.data<float>(), out.numel());
  return out;
}

Tensor& gated_activation_(GatedActivation act, Tensor& gate, const Tensor& up) {
  check_gated(gate, up, "gated_activation_");
  if (gate.dtype() != Dtype::f32 || !gate.is_contiguous())
    throw InvalidArgument("gated_activation_: gate must be contiguous f32, got " +
                          std::string(dtype_name(gate.dtype())) + (gate.is_contiguous() ? "" : " (strided)"));
  Tensor u = (up.dtype() == Dtype::f32 ? up : up.to(Dtype::f32)).contiguous();
  backend_for(gate.device())
      .activation_mul(kernel_activation(act), gate.data<float>(), u.data<float>(), gate.data<float>(), gate.numel());
  return gate;
}

}  // namespace lmx::ops
