// mlx-lm keeps DeepSeek's kv_b_proj split per head into "embed_q" [heads, kv_lora_rank,
// qk_nope_head_dim] and "unembed_out" [heads, v_head_dim, kv_lora_rank] (MultiLinear,
// possibly MLX-quantized along their last axis); lmx's multi-head latent attention keeps
// kv_b_proj [heads * (qk_nope_head_dim + v_head_dim), kv_lora_rank], rebuilt here (in
// f32 when the halves were quantized).
#pragma once

#include <string>

#include "lmx/models/language_model.h"
#include "lmx/nn/mla.h"

namespace lmx::models {

// attn: the attention's path ("model.layers.3.self_attn"). No-op without embed_q.
void merge_latent_projections(WeightDict& weights, const std::string& attn, const nn::MlaOptions& o);

}  // namespace lmx::models
