#include "lmx/nn/mlp.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <numeric>
#include <vector>

#include "lmx/core/backend.h"
#include "lmx/base/env_switch.h"
#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/index.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/ops/nn.h"
#include "lmx/core/ops/reduce.h"
#include "lmx/core/ops/shape.h"

namespace lmx::nn {

std::optional<ops::GatedActivation> fused_gate(Activation a) {
  switch (a) {
    case Activation::silu: return ops::GatedActivation::silu;
    case Activation::gelu: return ops::GatedActivation::gelu;
    case Activation::gelu_tanh: return ops::GatedActivation::gelu_tanh;
    default: return std::nullopt;
  }
}

namespace {

float scalar_of(const Tensor& t, float fallback) {
  return t.defined() ? t.to_float_vector().at(0) : fallback;
}

float softplus(float v) { return v > 20.0f ? v : std::log1p(std::exp(v)); }

// Per-expert MLX tensors stacked along a new first axis: w [E, out, in*bits/32], ...
QuantizedWeight stack_experts(const std::vector<QuantizedWeight>& experts) {
  std::vector<Tensor> ws, ss, bs;
  for (const auto& q : experts) {
    ws.push_back(q.w.unsqueeze(0));
    ss.push_back(q.scales.unsqueeze(0));
    if (q.biases.defined()) bs.push_back(q.biases.unsqueeze(0));
  }
  QuantizedWeight out;
  out.bits = experts.front().bits;
  out.group_size = experts.front().group_size;
  out.mode = experts.front().mode;
  out.w = ops::concat(ws, 0);
  out.scales = ops::concat(ss, 0);
  if (!bs.empty()) out.biases = ops::concat(bs, 0);
  return out;
}

}  // namespace

Tensor activate(Activation a, const Tensor& x) {
  switch (a) {
    case Activation::silu: return ops::silu(x);
    case Activation::gelu: return ops::gelu(x);
    case Activation::gelu_tanh: return ops::gelu_tanh(x);
    case Activation::relu2: return ops::square(ops::clamp(x, 0.0, std::numeric_limits<double>::infinity()));
    case Activation::quick_gelu: return ops::mul(x, ops::sigmoid(ops::mul(x, 1.702)));
    case Activation::xielu: throw InternalError("activate: xielu needs its parameters (nn::Xielu)");
  }
  return x;
}

// The fused kernel where there is one, else element-wise ops.
Tensor gated_activate(Activation a, const Tensor& gate, const Tensor& up) {
  if (auto f = fused_gate(a)) return ops::gated_activation(*f, gate, up);
  return ops::mul(activate(a, gate), up);
}

Xielu::Xielu() {
  register_parameter("alpha_p", alpha_p_, {1});
  register_parameter("alpha_n", alpha_n_, {1});
  register_parameter("beta", beta_, {}, false, true);
  register_parameter("eps", eps_, {}, false, true);
}

Tensor Xielu::forward(const Tensor& x) const {
  const float beta = scalar_of(beta_, 0.5f), eps = scalar_of(eps_, -1e-6f);
  const float ap = softplus(scalar_of(alpha_p_, 0.0f)), an = beta + softplus(scalar_of(alpha_n_, 0.0f));
  const Tensor bx = ops::mul(x, beta);
  const Tensor pos = ops::add(ops::mul(ops::square(x), ap), bx);
  const Tensor expm1 = ops::sub(ops::exp(ops::clamp(x, -std::numeric_limits<double>::infinity(), eps)), 1.0);
  const Tensor neg = ops::add(ops::mul(ops::sub(expm1, x), an), bx);
  return ops::where(ops::greater(x, Tensor::zeros({1}, x.dtype(), x.device())), pos, neg);
}

Activation parse_activation(const std::string& name) {
  if (name == "silu" || name == "swish") return Activation::silu;
  if (name == "gelu") return Activation::gelu;
  if (name == "relu2") return Activation::relu2;
  if (name == "gelu_pytorch_tanh" || name == "gelu_new" || name == "gelu_fast" || name == "gelu_tanh") {
    return Activation::gelu_tanh;
  }
  if (name == "quick_gelu") return Activation::quick_gelu;
  if (name == "xielu") return Activation::xielu;
  throw Unsupported("activation '" + name + "' is not supported");
}

Mlp::Mlp(const MlpOptions& o) : o_(o) {
  auto name = [](const std::string& given, const char* usual) { return given.empty() ? std::string(usual) : given; };
  switch (o.kind) {
    case MlpKind::gated:
      gate_ = std::make_unique<Linear>(o.hidden, o.intermediate, o.bias);
      up_ = std::make_unique<Linear>(o.hidden, o.intermediate, o.bias);
      down_ = std::make_unique<Linear>(o.intermediate, o.hidden, o.bias);
      register_module(name(o.gate_name, "gate_proj"), *gate_);
      register_module(name(o.up_name, "up_proj"), *up_);
      register_module(name(o.down_name, "down_proj"), *down_);
      break;
    case MlpKind::fused_gated:
      gate_up_ = std::make_unique<Linear>(o.hidden, 2 * o.intermediate, o.bias);
      down_ = std::make_unique<Linear>(o.intermediate, o.hidden, o.bias);
      register_module(name(o.gate_name, "gate_up_proj"), *gate_up_);
      register_module(name(o.down_name, "down_proj"), *down_);
      break;
    case MlpKind::plain:
      fc_ = std::make_unique<Linear>(o.hidden, o.intermediate, o.bias);
      proj_ = std::make_unique<Linear>(o.intermediate, o.hidden, o.bias);
      register_module(name(o.up_name, "c_fc"), *fc_);
      register_module(name(o.down_name, "c_proj"), *proj_);
      break;
  }
  if (o.act == Activation::xielu) {
    if (o.kind != MlpKind::plain) throw Unsupported("mlp: xielu is supported in plain MLPs only");
    xielu_ = std::make_unique<Xielu>();
    register_module("act_fn", *xielu_);
  }
  if (o.activation_sparsity != 0.0f) {
    if (o.kind != MlpKind::gated || !(o.activation_sparsity > 0.0f && o.activation_sparsity < 1.0f)) {
      throw FormatError("mlp: activation sparsity " + std::to_string(o.activation_sparsity) +
                        " needs a gated MLP and a fraction in (0, 1)");
    }
    sparsity_z_ = static_cast<float>(normal_quantile(o.activation_sparsity));
  }
  if (o.sub_norm_eps > 0.0f) {
    sub_norm_ = std::make_unique<RMSNorm>(o.intermediate, o.sub_norm_eps);
    register_module("ffn_sub_norm", *sub_norm_);
  }
}

double normal_quantile(double p) {
  if (!(p > 0.0 && p < 1.0)) throw InvalidArgument("normal_quantile: p must be in (0, 1)");
  // Bisection on the CDF 0.5 * erfc(-x / sqrt(2)): monotone, exact to double rounding.
  double lo = -40.0, hi = 40.0;
  for (int i = 0; i < 200 && hi - lo > 0.0; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (mid == lo || mid == hi) break;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// relu(gate - (mean + std * z)) per row (population std).
Tensor Mlp::sparsified(const Tensor& gate) const {
  const Tensor mean = ops::mean(gate, -1, true);
  const Tensor std = ops::sqrt(ops::mean(ops::square(ops::sub(gate, mean)), -1, true));
  const Tensor cutoff = ops::add(mean, ops::mul(std, static_cast<double>(sparsity_z_)));
  return ops::clamp(ops::sub(gate, cutoff), 0.0, std::numeric_limits<double>::infinity());
}

Tensor Mlp::act(const Tensor& x) const { return xielu_ ? xielu_->forward(x) : activate(o_.act, x); }

// act(gate) * up, then the sub-norm if the model has one.
Tensor Mlp::gated(const Tensor& gate, const Tensor& up) const {
  Tensor h = gated_activate(o_.act, gate, up);
  return sub_norm_ ? sub_norm_->forward(h) : h;
}

Tensor Mlp::forward(const ops::LinearInput& in) const {
  const int64_t width = in.shape().empty() ? 0 : in.shape().back();
  const int64_t rows = width > 0 ? shape_numel(in.shape()) / width : 0;
  const int64_t max_rows =
      std::max<int64_t>(64, (int64_t{8} << 20) / (4 * std::max<int64_t>(1, o_.intermediate)));
  // Chunks bound the CPU's intermediate buffers; a GPU runs the whole prompt in one GEMM.
  if (rows <= max_rows || (!in.device().is_cpu() && cuda_prefill_fused())) return forward_rows(in);
  const Tensor& x = in.value();
  const int64_t chunks = (rows + max_rows - 1) / max_rows;
  const int64_t step = (rows + chunks - 1) / chunks;  // balanced chunks
  const Tensor flat = x.contiguous().reshape({rows, width});
  std::vector<Tensor> parts;
  for (int64_t r = 0; r < rows; r += step)
    parts.push_back(forward_rows(flat.slice(0, r, std::min(rows, r + step))));
  Tensor out = ops::concat(parts, 0);
  Shape shape = x.shape();
  shape.back() = out.dim(-1);
  return out.reshape(shape);
}

std::optional<Mlp::GatedLayers> Mlp::gated_layers() const {
  if (o_.kind != MlpKind::gated || o_.activation_sparsity != 0.0f || sub_norm_ || xielu_) return std::nullopt;
  return GatedLayers{gate_.get(), up_.get(), down_.get(), o_.act};
}

Tensor Mlp::forward_rows(const ops::LinearInput& x) const {
  switch (o_.kind) {
    case MlpKind::gated: {
      const Linear* layers[2] = {gate_.get(), up_.get()};
      std::vector<Tensor> gu = forward_shared_input(x, layers);
      Tensor g = o_.activation_sparsity != 0.0f ? sparsified(gu[0]) : gu[0];
      // g: a fresh f32 buffer: the product is written into it
      if (!fused_gate(o_.act) || sub_norm_) return down_->forward(gated(g, gu[1]));
      if (g.dtype() != Dtype::f32 || !g.is_contiguous()) g = g.to(Dtype::f32).contiguous();
      // The product runs inside the down projection where the backend can (a decode row).
      return down_->forward(ops::LinearInput::gated(*fused_gate(o_.act), g, gu[1], true));
    }
    case MlpKind::fused_gated: {
      Tensor gu = gate_up_->forward(x);
      const int64_t n = o_.intermediate;
      return down_->forward(gated(gu.slice(-1, 0, n), gu.slice(-1, n, 2 * n)));
    }
    case MlpKind::plain:
      Tensor h = act(fc_->forward(x.value()));
      return proj_->forward(sub_norm_ ? sub_norm_->forward(h) : h);
  }
  return x.value();
}

SwitchLinear::SwitchLinear(int64_t experts, int64_t in, int64_t out, bool bias)
    : experts_(experts), in_(in), out_(out), has_bias_(bias) {
  register_all();
}

void SwitchLinear::register_all() {
  clear_parameters();
  if (has_bias_) register_parameter("bias", bias_, {experts_, out_});
  if (!quantized_) {
    register_parameter("weight", weight_, {experts_, out_, in_});
    return;
  }
  const int64_t groups = in_ / quant_.group_size;
  register_parameter("weight", quant_.w, {experts_, out_, in_ * quant_.bits / 32}, true);
  const bool affine = quant_.mode == QuantMode::affine;  // else u8 scale codes, no biases
  register_parameter("scales", quant_.scales, {experts_, out_, groups}, !affine);
  if (affine) register_parameter("biases", quant_.biases, {experts_, out_, groups});
}

void SwitchLinear::quantize_for_load(int bits, int group_size, QuantMode mode) {
  if (!is_supported_quantization(bits, group_size, mode) || in_ % group_size != 0) {
    throw FormatError(std::string("switch linear: unsupported ") + quant_mode_name(mode) +
                      " quantization bits=" + std::to_string(bits) +
                      " group_size=" + std::to_string(group_size) + " for input dim " + std::to_string(in_));
  }
  quantized_ = true;
  quant_ = QuantizedWeight{};
  quant_.bits = bits;
  quant_.group_size = group_size;
  quant_.mode = mode;
  weight_ = Tensor();
  register_all();
}

void SwitchLinear::quantize(int bits, int group_size, Dtype scale_dtype, QuantMode mode) {
  if (quantized_) return;
  std::vector<QuantizedWeight> experts;
  for (int64_t e = 0; e < experts_; ++e) {
    experts.push_back(
        QuantizedWeight::quantize(weight_.select(0, e), bits, group_size, scale_dtype, mode));
  }
  quantize_for_load(bits, group_size, mode);
  quant_ = stack_experts(experts);
}

QuantizedWeight SwitchLinear::expert_quant(int64_t e) const {
  QuantizedWeight q;
  q.bits = quant_.bits;
  q.group_size = quant_.group_size;
  q.mode = quant_.mode;
  if (!prepared_.empty()) {
    q.prepared = prepared_[static_cast<size_t>(e)];
    return q;
  }
  q.w = quant_.w.select(0, e);
  q.scales = quant_.scales.select(0, e);
  if (quant_.biases.defined()) q.biases = quant_.biases.select(0, e);
  return q;
}

void SwitchLinear::prepare() {
  if (!quantized_ || !prepared_.empty()) return;
  std::vector<std::shared_ptr<const PreparedWeight>> prepared;
  for (int64_t e = 0; e < experts_; ++e) {
    QuantizedWeight q = expert_quant(e);
    q.prepare();
    prepared.push_back(q.prepared);
  }
  prepared_ = std::move(prepared);
  // Only the prepared copies stay: the stacked tensors (or their mapped pages) go back.
  quant_.w = Tensor();
  quant_.scales = Tensor();
  quant_.biases = Tensor();
}

size_t SwitchLinear::prepared_bytes() const {
  size_t n = 0;
  for (const auto& p : prepared_) n += p->bytes();
  return n;
}

QuantizedWeight SwitchLinear::mlx_layout() const {
  if (!quantized_) throw InvalidArgument("switch linear: mlx_layout of a dense layer");
  if (prepared_.empty()) return quant_;
  std::vector<QuantizedWeight> experts;
  for (int64_t e = 0; e < experts_; ++e) experts.push_back(expert_quant(e).mlx_layout());
  return stack_experts(experts);
}

Tensor SwitchLinear::expert_weight(int64_t e) const {
  if (quantized_) throw InvalidArgument("switch linear: expert_weight of a quantized layer");
  return weight_.select(0, e);
}

Tensor SwitchLinear::expert_bias(int64_t e) const { return has_bias_ ? bias_.select(0, e) : Tensor(); }

Tensor SwitchLinear::forward(const Tensor& x, int64_t expert) const {
  const Tensor bias = expert_bias(expert);
  if (quantized_) return ops::quantized_linear(x, expert_quant(expert), bias);
  return ops::linear(x, weight_.select(0, expert), bias);
}

}  // namespace lmx::nn
