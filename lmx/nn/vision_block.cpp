#include "lmx/nn/vision_block.h"

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"

namespace lmx::nn {

VisionBlock::VisionBlock(const VisionBlockOptions& o) {
  if (o.heads <= 0 || o.hidden % o.heads != 0) {
    throw FormatError("vision block: hidden " + std::to_string(o.hidden) + " is not a multiple of " +
                      std::to_string(o.heads) + " heads");
  }
  norm1_ = std::make_unique<Norm>(o.norm, o.hidden, o.norm_eps);
  norm2_ = std::make_unique<Norm>(o.norm, o.hidden, o.norm_eps);
  AttentionOptions ao{.hidden = o.hidden, .heads = o.heads, .kv_heads = o.heads, .head_dim = o.hidden / o.heads,
                      .qkv_bias = o.bias, .o_bias = o.bias, .fused_qkv = o.fused_qkv};
  ao.qkv_name = "qkv";
  ao.o_name = !o.o_name.empty() ? o.o_name : o.fused_qkv ? "proj" : "out_proj";
  ao.causal = false;
  attn_ = std::make_unique<Attention>(ao);
  MlpOptions mo{.kind = o.gated_mlp ? MlpKind::gated : MlpKind::plain, .hidden = o.hidden,
                .intermediate = o.intermediate, .act = o.act, .bias = o.bias};
  if (!o.gated_mlp) {  // CLIP / SigLIP's plain MLP; the gated one keeps gate / up / down_proj
    mo.up_name = o.fc1_name;
    mo.down_name = o.fc2_name;
  }
  mlp_ = std::make_unique<Mlp>(mo);
  register_module(o.norm1_name, *norm1_);
  register_module(o.attn_name, *attn_);
  register_module(o.norm2_name, *norm2_);
  register_module(o.mlp_name, *mlp_);
}

Tensor VisionBlock::forward(const Tensor& x, const AttentionContext* ctx) const {
  Tensor h = ops::add(x, attn_->forward(norm1_->forward(x), nullptr, ctx));
  return ops::add(h, mlp_->forward(norm2_->forward(h)));
}

}  // namespace lmx::nn
