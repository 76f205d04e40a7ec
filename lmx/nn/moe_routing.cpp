#include "lmx/nn/moe_routing.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "lmx/base/error.h"

namespace lmx::nn {
namespace {

// Indices of the k largest values (ties to the lower index).
std::vector<int64_t> top_indices(const std::vector<float>& v, int64_t k) {
  std::vector<int64_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int64_t a, int64_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
  order.resize(static_cast<size_t>(k));
  return order;
}

// PhiMoE's sparsemixer in evaluation mode: the winner's weight is a softmax over the
// logits within 2 * eps (relative) of it; the runner-up's the same with the winner left out.
void sparsemixer(const float* s, int64_t E, float eps, int64_t* experts, float* weights) {
  int64_t excluded = -1;
  for (int pick = 0; pick < 2; ++pick) {
    int64_t best = -1;
    for (int64_t j = 0; j < E; ++j) {
      if (j != excluded && (best < 0 || s[j] > s[best])) best = j;
    }
    const float m = s[best];
    double total = 0.0;
    for (int64_t j = 0; j < E; ++j) {
      if (j == excluded) continue;
      const float factor = std::max(std::fabs(s[j]), m);
      if ((m - s[j]) / factor > 2.0f * eps) continue;
      total += std::exp(static_cast<double>(s[j]) - m);
    }
    experts[pick] = best;
    weights[pick] = static_cast<float>(1.0 / total);
    excluded = best;
  }
}

}  // namespace

MoeRoute route_tokens(const MoeRouting& r, const float* logits, int64_t tokens, int64_t E, const float* correction) {
  const int64_t K = r.top_k;
  if (K <= 0 || K > E) throw InvalidArgument("moe routing: top_k " + std::to_string(K) + " for " + std::to_string(E) + " experts");
  if (r.groups < 1 || E % r.groups != 0 || r.topk_groups < 1 || r.topk_groups > r.groups) {
    throw InvalidArgument("moe routing: " + std::to_string(E) + " experts in " + std::to_string(r.groups) +
                          " groups, " + std::to_string(r.topk_groups) + " chosen");
  }
  if (r.scoring == MoeScoring::sparsemixer && K != 2) throw InvalidArgument("moe routing: sparsemixer needs top_k 2");
  MoeRoute out;
  out.experts.resize(static_cast<size_t>(tokens * K));
  out.weights.resize(static_cast<size_t>(tokens * K));
  std::vector<float> p(static_cast<size_t>(E)), choice(static_cast<size_t>(E));
  const int64_t per_group = E / r.groups;
  for (int64_t t = 0; t < tokens; ++t) {
    const float* x = logits + t * E;
    int64_t* ex = out.experts.data() + t * K;
    float* w = out.weights.data() + t * K;
    if (r.scoring == MoeScoring::sparsemixer) {
      sparsemixer(x, E, r.jitter_eps, ex, w);
      continue;
    }
    if (r.scoring == MoeScoring::softmax) {
      const float m = *std::max_element(x, x + E);
      float total = 0.0f;
      for (int64_t e = 0; e < E; ++e) total += p[e] = std::exp(x[e] - m);
      for (auto& v : p) v /= total;
    } else {
      for (int64_t e = 0; e < E; ++e) p[e] = 1.0f / (1.0f + std::exp(-x[e]));
    }
    for (int64_t e = 0; e < E; ++e) choice[e] = p[e] + (correction ? correction[e] : 0.0f);
    if (r.groups > 1 && r.topk_groups < r.groups) {
      std::vector<float> group_scores(static_cast<size_t>(r.groups));
      for (int64_t g = 0; g < r.groups; ++g) {
        std::vector<float> members(choice.begin() + g * per_group, choice.begin() + (g + 1) * per_group);
        std::sort(members.begin(), members.end(), std::greater<float>());
        group_scores[g] = r.group_score == GroupScore::max || per_group < 2 ? members[0] : members[0] + members[1];
      }
      std::vector<bool> keep(static_cast<size_t>(r.groups), false);
      for (int64_t g : top_indices(group_scores, r.topk_groups)) keep[g] = true;
      for (int64_t e = 0; e < E; ++e) {
        if (!keep[e / per_group]) choice[e] = 0.0f;  // as transformers masks them (not -inf)
      }
    }
    const std::vector<int64_t> chosen = top_indices(choice, K);
    float total = 0.0f;
    for (int64_t j = 0; j < K; ++j) total += p[chosen[j]];
    for (int64_t j = 0; j < K; ++j) {
      ex[j] = chosen[j];
      w[j] = (r.norm_topk_prob ? p[chosen[j]] / std::max(total, 1e-20f) : p[chosen[j]]) * r.routed_scaling;
    }
  }
  return out;
}

}  // namespace lmx::nn
