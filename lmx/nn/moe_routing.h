// How a mixture-of-experts router turns its logits into the experts each token visits
// and their weights, for every routing rule the supported families use (softmax or
// sigmoid scores, group-limited selection with a correction bias, PhiMoE's
// sparsemixer). Pure host code over f32 rows: what SparseMoe calls, testable alone.
#pragma once

#include <cstdint>
#include <vector>

namespace lmx::nn {

enum class MoeScoring {
  softmax,      // p = softmax(logits)                (Mixtral, Qwen, OLMoE, DeepSeek-V2, gpt-oss)
  sigmoid,      // p = sigmoid(logits)                (DeepSeek-V3, GLM-4-MoE, Llama 4)
  sparsemixer,  // PhiMoE: top-2, each weight a softmax over the logits near the winner
};
enum class GroupScore { top2_sum, max };  // DeepSeek-V3 / GLM-4-MoE, DeepSeek-V2

struct MoeRouting {
  MoeScoring scoring = MoeScoring::softmax;
  int64_t top_k = 1;
  bool norm_topk_prob = true;   // divide the chosen weights by their sum
  float routed_scaling = 1.0f;  // multiplies the final weights
  // Group-limited selection: experts split into `groups` equal groups, only the
  // `topk_groups` best groups (by GroupScore over the selection scores) compete.
  int64_t groups = 1;
  int64_t topk_groups = 1;
  GroupScore group_score = GroupScore::top2_sum;
  float jitter_eps = 0.0f;  // sparsemixer's threshold (router_jitter_noise)
};

struct MoeRoute {
  std::vector<int64_t> experts;  // [tokens * top_k]
  std::vector<float> weights;    // [tokens * top_k]
};

// logits [tokens, experts] row-major. correction: optional [experts] bias added to the
// scores for choosing experts only (e_score_correction_bias; nullptr = none). Ties go to
// the lower expert index.
MoeRoute route_tokens(const MoeRouting& r, const float* logits, int64_t tokens, int64_t experts,
                      const float* correction = nullptr);

}  // namespace lmx::nn
