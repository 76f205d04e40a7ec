// Builders of the mixture-of-experts families (one file each, qwen2_moe beside the other
// Qwens) and the MoE config reading they share.
#pragma once

#include "lmx/models/llm/common.h"

namespace lmx::models::llm {

// A sparse block of `experts` gated experts of width `intermediate` (checked positive,
// naming `intermediate_key` / `experts_key` of config.json) choosing `top_k`.
nn::MoeOptions read_moe(const ConfigReader& c, const TransformerSpec& s, const char* intermediate_key,
                        const char* experts_key, const char* top_k_key);

// The same sparse block in every layer.
void moe_in_every_layer(TransformerSpec& s, const nn::MoeOptions& o);

// DeepSeek's MoE layout (also GLM-4-MoE): dense MLPs in the first first_k_dense_replace
// layers, then routed experts with n_shared_experts shared ones, routed_scaling_factor,
// norm_topk_prob; `sigmoid_groups`: V3's sigmoid scores with e_score_correction_bias and
// group-limited choice (n_group / topk_group), else V2's softmax (greedy, or
// topk_method "group_limited_greedy").
void deepseek_moe_layers(const ConfigReader& c, TransformerSpec& s, bool sigmoid_groups);

TransformerSpec qwen2_moe(const ConfigReader& c);
TransformerSpec olmoe(const ConfigReader& c);
TransformerSpec phimoe(const ConfigReader& c);
TransformerSpec deepseek_v2(const ConfigReader& c);
TransformerSpec deepseek_v3(const ConfigReader& c);
TransformerSpec glm4_moe(const ConfigReader& c);
TransformerSpec gpt_oss(const ConfigReader& c);
TransformerSpec ernie4_5_moe(const ConfigReader& c);
TransformerSpec llama4_text(const ConfigReader& c);
TransformerSpec dbrx(const ConfigReader& c);

}  // namespace lmx::models::llm
