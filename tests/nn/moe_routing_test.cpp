// The routing rules of lmx/nn/moe_routing against cases worked out by hand from the
// rules as transformers states them (the fixtures' parity tests check them end to end).
#include <gtest/gtest.h>

#include <cmath>

#include "lmx/base/error.h"
#include "lmx/nn/moe_routing.h"

namespace lmx::nn {
namespace {

TEST(MoeRouting, SoftmaxTopKWithAndWithoutRenormalizing) {
  const float logits[4] = {std::log(0.1f), std::log(0.2f), std::log(0.3f), std::log(0.4f)};
  MoeRouting r;
  r.top_k = 2;
  r.norm_topk_prob = false;
  MoeRoute got = route_tokens(r, logits, 1, 4);
  EXPECT_EQ(got.experts, (std::vector<int64_t>{3, 2}));
  EXPECT_NEAR(got.weights[0], 0.4f, 1e-6);
  EXPECT_NEAR(got.weights[1], 0.3f, 1e-6);
  r.norm_topk_prob = true;
  got = route_tokens(r, logits, 1, 4);
  EXPECT_NEAR(got.weights[0], 0.4f / 0.7f, 1e-6);
  EXPECT_NEAR(got.weights[1], 0.3f / 0.7f, 1e-6);
}

// DeepSeek-V3: sigmoid scores; the correction bias steers the choice only; groups ranked
// by the sum of their two best biased scores; experts of dropped groups score 0 (not -inf),
// so one of them can still beat a kept expert whose biased score is negative.
TEST(MoeRouting, SigmoidGroupsWithCorrectionBias) {
  const float logits[4] = {0, 0, 0, 0};  // sigmoid 0.5 each
  MoeRouting r;
  r.scoring = MoeScoring::sigmoid;
  r.top_k = 2;
  r.groups = 2;
  r.topk_groups = 1;
  r.routed_scaling = 2.0f;
  const float bias[4] = {0.1f, 0.2f, -0.3f, 0.4f};  // group sums 1.3 vs 1.1: group 0 wins over expert 3
  MoeRoute got = route_tokens(r, logits, 1, 4, bias);
  EXPECT_EQ(got.experts, (std::vector<int64_t>{1, 0}));
  EXPECT_NEAR(got.weights[0], 1.0f, 1e-6);  // 0.5 / (0.5 + 0.5) * 2
  const float negative[4] = {-0.7f, -0.9f, -0.6f, 0.4f};  // group 1 wins; expert 2 scores -0.1 < 0
  got = route_tokens(r, logits, 1, 4, negative);
  EXPECT_EQ(got.experts, (std::vector<int64_t>{3, 0}));
}

// DeepSeek-V2's group_limited_greedy ranks groups by their best score.
TEST(MoeRouting, GroupsRankedByTheirMaximum) {
  const float logits[4] = {std::log(0.35f), std::log(0.05f), std::log(0.3f), std::log(0.3f)};
  MoeRouting r;
  r.top_k = 2;
  r.norm_topk_prob = false;
  r.groups = 2;
  r.topk_groups = 1;
  r.group_score = GroupScore::max;  // 0.35 vs 0.3 (the top-2 sums would pick group 1)
  MoeRoute got = route_tokens(r, logits, 1, 4);
  EXPECT_EQ(got.experts, (std::vector<int64_t>{0, 1}));
  EXPECT_NEAR(got.weights[1], 0.05f, 1e-6);
}

// PhiMoE's sparsemixer (eval): threshold 2 * eps relative to max(|logit|, winner).
TEST(MoeRouting, SparsemixerWeightsSoftmaxNearTheWinner) {
  const float logits[8] = {1.0f, 0.9f, 0.75f, -1.0f,  // token 0
                           0.0f, 2.0f, -3.0f, 1.0f};  // token 1: far apart, weights 1
  MoeRouting r;
  r.scoring = MoeScoring::sparsemixer;
  r.top_k = 2;
  r.jitter_eps = 0.1f;
  MoeRoute got = route_tokens(r, logits, 2, 4);
  EXPECT_EQ(got.experts, (std::vector<int64_t>{0, 1, 1, 3}));
  // winner: softmax over {1.0, 0.9} (0.75 is 0.25 > 0.2 away); runner-up over {0.9, 0.75}.
  EXPECT_NEAR(got.weights[0], 1.0 / (1.0 + std::exp(-0.1)), 1e-6);
  EXPECT_NEAR(got.weights[1], 1.0 / (1.0 + std::exp(-0.15)), 1e-6);
  EXPECT_NEAR(got.weights[2], 1.0f, 1e-6);
  EXPECT_NEAR(got.weights[3], 1.0f, 1e-6);
}

TEST(MoeRouting, RejectsImpossibleSettings) {
  const float logits[4] = {0, 0, 0, 0};
  MoeRouting r;
  r.top_k = 5;
  EXPECT_THROW(route_tokens(r, logits, 1, 4), InvalidArgument);
  r.top_k = 2;
  r.groups = 3;
  EXPECT_THROW(route_tokens(r, logits, 1, 4), InvalidArgument);
}

}  // namespace
}  // namespace lmx::nn
