// The pre-norm encoder layer of vision transformers (CLIP, SigLIP, Qwen2-VL, Qwen2.5-VL,
// Qwen3-VL, Pixtral): x + attn(norm1(x)), then + mlp(norm2(x)); bidirectional attention.
#pragma once

#include <memory>
#include <string>

#include "lmx/nn/attention.h"
#include "lmx/nn/mlp.h"
#include "lmx/nn/norm.h"

namespace lmx::nn {

struct VisionBlockOptions {
  int64_t hidden = 0;
  int64_t heads = 0;
  int64_t intermediate = 0;
  NormKind norm = NormKind::layer;
  float norm_eps = 1e-6f;
  Activation act = Activation::gelu;
  bool gated_mlp = false;  // gate_proj / up_proj / down_proj (Qwen2.5-VL, Pixtral)
  bool bias = true;        // biases on every projection (Pixtral has none)
  // Checkpoint names: CLIP / SigLIP layer_norm1, self_attn.{q,k,v,out}_proj, mlp.fc1/fc2;
  // Qwen2-VL norm1, attn.qkv / attn.proj; Qwen3-VL mlp.linear_fc1/linear_fc2; Pixtral
  // attention_norm, attention.{q,k,v,o}_proj, ffn_norm, feed_forward.
  std::string norm1_name = "layer_norm1";
  std::string norm2_name = "layer_norm2";
  std::string attn_name = "self_attn";
  std::string mlp_name = "mlp";
  std::string o_name{};     // empty: "proj" when fused, else "out_proj"
  std::string fc1_name = "fc1", fc2_name = "fc2";  // the plain MLP's
  bool fused_qkv = false;  // "qkv" and "proj"
};

class VisionBlock : public Module {
 public:
  explicit VisionBlock(const VisionBlockOptions& o);
  // x [batch, tokens, hidden]; ctx: the 2-D rotation and the image / window blocks.
  Tensor forward(const Tensor& x, const AttentionContext* ctx = nullptr) const;

 private:
  std::unique_ptr<Norm> norm1_, norm2_;
  std::unique_ptr<Attention> attn_;
  std::unique_ptr<Mlp> mlp_;
};

}  // namespace lmx::nn
