// Sparse mixture of experts: a router picks top-k experts per token (lmx/nn/moe_routing.h),
// each expert is a gated MLP over stacked weights (mlx-lm's switch_mlp layout), and
// optional shared experts run on every token (DeepSeek, Qwen2-MoE with a sigmoid gate).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "lmx/nn/mlp.h"
#include "lmx/nn/moe_routing.h"

namespace lmx::nn {

// How an expert combines its gate and up projections.
enum class ExpertActivation {
  gated,           // act(gate) * up
  clamped_swiglu,  // gpt-oss: g = min(gate, limit), u = clamp(up, +-limit); g * sigmoid(alpha g) * (u + 1)
};

struct MoeOptions {
  int64_t hidden = 0;
  int64_t intermediate = 0;  // per expert
  int64_t experts = 0;
  int64_t top_k = 0;
  bool norm_topk_prob = true;  // renormalize the top-k routing weights to sum to 1
  Activation act = Activation::silu;
  MoeRouting routing;  // top_k and norm_topk_prob above override its fields
  bool router_bias = false;
  std::string router_name = "gate";
  // Per-expert bias added to the selection scores ("" = none; may be absent from a
  // checkpoint), a path under this block:
  // DeepSeek-V3 "gate.e_score_correction_bias", ERNIE "moe_statics.e_score_correction_bias".
  std::string correction_bias;
  // Per-expert multiplier of the final routing weights ("" = none), a path under this block:
  // Gemma 4 "router.per_expert_scale".
  std::string expert_scale;
  std::string experts_name = "switch_mlp";  // the stacked experts' module (gpt-oss: "experts")
  // Checkpoints with fused 3-D experts (transformers 5 "experts.gate_up_proj"): which
  // orientation to assume where the shapes cannot tell ([E, in, out]: Llama 4, gpt-oss)
  // and whether gate and up alternate along the fused axis (gpt-oss) or are its halves.
  bool fused_in_out = false;
  bool fused_interleaved = false;
  bool expert_bias = false;  // biases on every expert projection (and the shared experts')
  ExpertActivation expert_act = ExpertActivation::gated;
  float swiglu_alpha = 1.702f;
  float swiglu_limit = 7.0f;
  bool weight_inputs = false;  // Llama 4: the routing weight scales the expert's input, not its output
  // Shared experts (0 = none): a gated MLP of this width on every token.
  int64_t shared_intermediate = 0;
  std::string shared_name = "shared_experts";
  bool shared_gate = false;  // Qwen2-MoE: scaled by sigmoid("shared_expert_gate"(x))
  // Expert parallelism (lmx/models/tensor_parallel.h): this layer holds `local_experts` of the
  // `experts` (0 = all), from `expert_begin` on; the router still scores every expert, and
  // only the chosen experts held here add to the output (the ranks' outputs are then summed).
  int64_t expert_begin = 0;
  int64_t local_experts = 0;
};

class SparseMoe : public Module {
 public:
  explicit SparseMoe(const MoeOptions& o);
  Tensor forward(const Tensor& x) const { return forward(x, x); }
  // Experts over x, routed by the router over `route` (Gemma 4 routes on the layer's input
  // and feeds the experts its normed copy).
  Tensor forward(const Tensor& x, const Tensor& route) const;
  const MoeOptions& options() const { return o_; }

 private:
  Tensor expert(const Tensor& xs, int64_t e) const;
  Tensor activate_expert(Tensor g, Tensor u) const;
  bool experts_prepared() const;
  // The shared expert's layers when they can join the routed experts' batched calls
  // (ungated, a plain gated MLP, prepared quantized weights, no adapters).
  std::optional<Mlp::GatedLayers> shared_in_batches() const;
  // out [1, hidden] += the chosen experts of the one token of rows (decode), their
  // projections as two batched calls (ops::quantized_linears_each), the bits of expert().
  // With `shared`, the shared expert's projections join those calls and out (zeros on entry)
  // first takes its output, the bits of shared_->forward(rows).
  void add_experts_one_token(const Tensor& rows, const MoeRoute& route, const Mlp::GatedLayers* shared,
                             float* out) const;

  // Of the global expert e: its index among this layer's experts, or -1 where another rank holds it.
  int64_t local_expert(int64_t e) const;

  MoeOptions o_;
  std::unique_ptr<Linear> gate_;  // router [experts, hidden]
  Tensor correction_;             // [experts]
  Tensor expert_scale_;           // [experts]
  std::unique_ptr<SwitchLinear> gate_proj_, up_proj_, down_proj_;
  std::unique_ptr<Mlp> shared_;
  std::unique_ptr<Linear> shared_gate_;
};

}  // namespace lmx::nn
