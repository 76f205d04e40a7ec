// The independent account of what the prefix cache should reuse, shared by the
// generation and server tests: prompt i takes the whole blocks of its longest common
// prefix with the prompts served before it, within its prefill (all but its last token).
// Earlier sequences stored their prompts and, once finished, their replies; a reply
// only matters when an earlier prompt is a strict prefix of this one, which the
// workloads avoid (the count would then depend on timing, and the check says so).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace lmx::testing {

// The tokens prompt i shares from the start with an earlier prompt j (the test's prompts
// are built so that no earlier one is a whole prefix of a later one).
inline size_t common_start(const std::vector<std::vector<int32_t>>& prompts, size_t i, size_t j) {
  const auto &p = prompts[i], &q = prompts[j];
  size_t k = 0;
  while (k < std::min(p.size(), q.size()) && p[k] == q[k]) ++k;
  if (k == q.size() && q.size() < p.size()) ADD_FAILURE() << "prompt " << j << " is a prefix of prompt " << i;
  return k;
}

inline int64_t expected_cached_tokens(const std::vector<std::vector<int32_t>>& prompts,
                                      size_t i,
                                      size_t block) {
  const auto& p = prompts[i];
  size_t best = 0;
  for (size_t j = 0; j < i; ++j) best = std::max(best, std::min(common_start(prompts, i, j), p.size() - 1));
  return static_cast<int64_t>(best / block * block);
}

// The same with partial blocks (SchedulerOptions::prefix_partial_blocks, the server's
// default), when every earlier sequence had finished before prompt i came: from sequence
// j it reuses the common prefix with prompt j as far as j stored, i.e. its prompt and
// reply but the last token (held[j] = prompt + generated - 1 tokens).
inline int64_t expected_cached_tokens_partial(const std::vector<std::vector<int32_t>>& prompts,
                                              size_t i,
                                              const std::vector<size_t>& held) {
  const auto& p = prompts[i];
  size_t best = 0;
  for (size_t j = 0; j < i; ++j) best = std::max(best, std::min({common_start(prompts, i, j), p.size() - 1, held[j]}));
  return static_cast<int64_t>(best);
}

}  // namespace lmx::testing
