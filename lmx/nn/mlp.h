// Feed-forward blocks: gated (Llama: down(act(gate(x)) * up(x))), fused gated (Phi-3's
// gate_up_proj), plain (StarCoder2: c_proj(act(c_fc(x)))), and the stacked expert
// weights that mixtures of experts (lmx/nn/moe.h) run through.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lmx/core/ops/nn.h"
#include "lmx/nn/linear.h"

namespace lmx::nn {

enum class MlpKind { gated, fused_gated, plain };
enum class Activation { silu, gelu, gelu_tanh, relu2 };  // relu2: relu(x)^2, plain MLPs only (Nemotron-H)

// Parses an HF activation name (silu, gelu, gelu_pytorch_tanh, gelu_new, ...).
Activation parse_activation(const std::string& name);
// act(x), element-wise.
Tensor activate(Activation a, const Tensor& x);
// act(gate) * up, element-wise (one fused pass).
Tensor gated_activate(Activation a, const Tensor& gate, const Tensor& up);

struct MlpOptions {
  MlpKind kind = MlpKind::gated;
  int64_t hidden = 0;
  int64_t intermediate = 0;
  Activation act = Activation::silu;
  bool bias = false;
};

class Mlp : public Module {
 public:
  explicit Mlp(const MlpOptions& o);
  // Long inputs (prefill) go through in row chunks whose intermediate activations stay
  // under about 8 MiB each, and the gated product is written into the gate buffer: the
  // [rows, intermediate] buffers would otherwise dominate the memory a prefill needs on
  // top of weights and KV cache.
  Tensor forward(const Tensor& x) const;

 private:
  Tensor forward_rows(const Tensor& x) const;

  MlpOptions o_;
  std::unique_ptr<Linear> gate_, up_, down_, gate_up_, fc_, proj_;
};

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

 private:
  void register_all();
  QuantizedWeight expert_quant(int64_t e) const;
  int64_t experts_, in_, out_;
  bool has_bias_;
  bool quantized_ = false;
  Tensor weight_;  // dense [E, out, in]
  Tensor bias_;    // [E, out]
  QuantizedWeight quant_;  // stacked: w [E, out, in*bits/32], scales/biases [E, out, in/g]
  std::vector<std::shared_ptr<const PreparedWeight>> prepared_;
};

}  // namespace lmx::nn
