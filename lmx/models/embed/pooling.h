// The pooling modes of sentence-transformers: one vector per input from the last hidden
// state of its real tokens. Several modes concatenate in sentence-transformers' order
// (cls, mean, max, mean_sqrt_len, weighted_mean, last_token).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lmx/core/tensor.h"

namespace lmx::models::embed {

enum class PoolingMode { cls, mean, max, mean_sqrt_len, weighted_mean, last_token };

// cls (= first), mean, max, mean_sqrt_len, weightedmean (= weighted_mean), lasttoken
// (= last, last_token). InvalidArgument listing the names otherwise.
PoolingMode parse_pooling_mode(std::string_view name);
std::string pooling_mode_name(PoolingMode mode);

// hidden f32 [batch, seq, dim] (right-padded: row b has lengths[b] real tokens) ->
// f32 [batch, dim * modes.size()]. Only real tokens are read, so padding never changes a
// row. mean = sum / n; mean_sqrt_len = sum / sqrt(n); weighted_mean weights token i by
// i + 1; max per feature; cls the first token, last_token the last real one.
Tensor pool(const Tensor& hidden, const std::vector<int64_t>& lengths, std::span<const PoolingMode> modes);

// Rows scaled to unit L2 norm (x / max(|x|, 1e-12), as torch's F.normalize).
Tensor l2_normalize_rows(const Tensor& x);

}  // namespace lmx::models::embed
