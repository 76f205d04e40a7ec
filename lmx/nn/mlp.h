// Feed-forward blocks: gated (Llama: down(act(gate(x)) * up(x))), fused gated (Phi-3's
// gate_up_proj), plain (StarCoder2: c_proj(act(c_fc(x)))), and the stacked expert
// weights that mixtures of experts (lmx/nn/moe.h) run through.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmx/core/ops/nn.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/norm.h"

namespace lmx::nn {

enum class MlpKind { gated, fused_gated, plain };
// relu2: relu(x)^2 (BitNet, NanoChat); quick_gelu: x * sigmoid(1.702 x) (CLIP, Qwen2-VL's
// vision tower); xielu: the learned xIELU of Apertus, whose parameters live in an Xielu
// module ("act_fn").
enum class Activation { silu, gelu, gelu_tanh, relu2, quick_gelu, xielu };

// Parses an HF activation name (silu, gelu, gelu_pytorch_tanh, gelu_new, relu2, xielu, ...).
Activation parse_activation(const std::string& name);
// act(x), element-wise (not xielu: that one has parameters, see Xielu).
Tensor activate(Activation a, const Tensor& x);
// The fused gated kernel's activation for `a`, if it has one (silu, gelu, gelu_tanh).
std::optional<ops::GatedActivation> fused_gate(Activation a);
// act(gate) * up (one fused pass for silu / gelu / gelu_tanh).
Tensor gated_activate(Activation a, const Tensor& gate, const Tensor& up);

// xIELU (arXiv 2411.13010): x > 0: ap * x^2 + beta * x; else
// (expm1(min(x, eps)) - x) * an + beta * x, with ap = softplus(alpha_p) and
// an = beta + softplus(alpha_n), as transformers computes it.
class Xielu : public Module {
 public:
  Xielu();
  Tensor forward(const Tensor& x) const;

 private:
  Tensor alpha_p_, alpha_n_;  // [1], learned
  Tensor beta_, eps_;         // scalars; optional in a checkpoint (defaults 0.5, -1e-6)
};

struct MlpOptions {
  MlpKind kind = MlpKind::gated;
  int64_t hidden = 0;
  int64_t intermediate = 0;
  Activation act = Activation::silu;
  bool bias = false;
  // Checkpoint names, empty for the kind's usual ones. gate_name: the gate ("gate_proj")
  // or, fused, the [gate | up] matrix ("gate_up_proj"; ModernBERT Wi); up_name: the gated
  // up projection ("up_proj"; nomic fc11) or the plain first one ("c_fc"; Phi fc1, GPT-NeoX
  // dense_h_to_4h); down_name: "down_proj" when gated or fused, "c_proj" when plain.
  std::string gate_name{};
  std::string up_name{};
  std::string down_name{};
  // > 0: RMSNorm "ffn_sub_norm" over the intermediate activations before the down
  // projection (BitNet), with this epsilon.
  float sub_norm_eps = 0.0f;
  // In (0, 1): Gemma 3n's activation sparsity on the gate of a gated MLP: gate ->
  // relu(gate - (mean + std * z)) over each row, z the standard normal quantile of this
  // fraction, so about that fraction of the gate is zero before the activation.
  float activation_sparsity = 0.0f;
};

class Mlp : public Module {
 public:
  explicit Mlp(const MlpOptions& o);
  // Long inputs (prefill) go through in row chunks whose intermediate activations stay
  // under about 8 MiB each, and the gated product is written into the gate buffer: the
  // [rows, intermediate] buffers would otherwise dominate the memory a prefill needs on
  // top of weights and KV cache.
  // x may be a norm not yet run (ops::LinearInput): a decode row's runs inside the first
  // projections where the backend can.
  Tensor forward(const ops::LinearInput& x) const;

  // A gated MLP whose output is exactly down(gated_activate(act, gate(x), up(x))) (no
  // activation sparsity, sub-norm or xIELU) hands out its three layers, so a caller can run
  // them inside its own batched calls (a MoE's shared expert with the routed ones); null
  // otherwise.
  struct GatedLayers {
    const Linear* gate = nullptr;
    const Linear* up = nullptr;
    const Linear* down = nullptr;
    Activation act = Activation::silu;
  };
  std::optional<GatedLayers> gated_layers() const;

 private:
  Tensor forward_rows(const ops::LinearInput& x) const;

  Tensor act(const Tensor& x) const;
  Tensor sparsified(const Tensor& gate) const;
  Tensor gated(const Tensor& gate, const Tensor& up) const;

  MlpOptions o_;
  std::unique_ptr<Linear> gate_, up_, down_, gate_up_, fc_, proj_;
  std::unique_ptr<Xielu> xielu_;
  std::unique_ptr<RMSNorm> sub_norm_;
  float sparsity_z_ = 0.0f;  // the normal quantile of activation_sparsity
};

// The x with P(Z <= x) = p for a standard normal Z, p in (0, 1).
double normal_quantile(double p);

// Experts stored stacked: weight [experts, out, in] (or MLX-quantized per expert), and
// optionally a bias [experts, out].
class SwitchLinear : public Module {
 public:
  SwitchLinear(int64_t experts, int64_t in, int64_t out, bool bias = false);
  void quantize_for_load(int bits, int group_size, QuantMode mode = QuantMode::affine);
  void quantize(int bits, int group_size, Dtype scale_dtype, QuantMode mode = QuantMode::affine);
  // Prepares every expert for its device's kernels, then keeps only the prepared copies.
  void prepare();
  // x [tokens, in] through expert e -> [tokens, out] (f32).
  Tensor forward(const Tensor& x, int64_t expert) const;
  int64_t experts() const { return experts_; }
  bool quantized() const { return quantized_; }
  // Bytes of the experts' prepared copies (0 when dense or not prepared).
  size_t prepared_bytes() const;
  // The per-expert prepared copies (quantized layers, once prepared; else empty).
  const std::vector<std::shared_ptr<const PreparedWeight>>& prepared() const { return prepared_; }
  // The stacked MLX tensors (quantized layers only): held, or unpacked from the prepared copies.
  QuantizedWeight mlx_layout() const;
  // Expert e's matrix: dense [out, in] (a view; dense layers only), or packed (quantized
  // layers only), and its bias [out] (undefined without biases). Training reads these.
  Tensor expert_weight(int64_t e) const;
  QuantizedWeight expert_quant(int64_t e) const;
  Tensor expert_bias(int64_t e) const;

 private:
  void register_all();
  int64_t experts_, in_, out_;
  bool has_bias_;
  bool quantized_ = false;
  Tensor weight_;  // dense [E, out, in]
  Tensor bias_;    // [E, out]
  QuantizedWeight quant_;  // stacked: w [E, out, in*bits/32], scales/biases [E, out, in/g]
  std::vector<std::shared_ptr<const PreparedWeight>> prepared_;
};

}  // namespace lmx::nn
