// Scaled dot-product attention over strided q / k / v views (KV caches are views into
// larger buffers), with GQA, causal / sliding-window masks, additive masks, logit
// soft-capping and attention sinks.
#pragma once

#include <cstdint>

#include "lmx/base/thread_pool.h"
#include "lmx/core/kernel_args.h"

namespace lmx::cpu {

using kernels::AttentionArgs;
using kernels::AttentionOptions;



// out = softmax(scale * q k^T (softcapped) + mask, over visible keys) v.
// Scores: s_ij = scale * <q_i, k_j>; softcap; + mask_ij; invisible keys (causal /
// window) get -inf. A query row that sees no key (everything masked, or -inf in the
// mask everywhere) yields zeros, not NaN (with sinks: zeros too, since the sink has
// no value). With AVX2 or AVX-512: a flash-attention kernel (online softmax over key tiles,
// GQA heads sharing each k/v load, decode split over key blocks when there are fewer
// heads than threads). Without: the naive reference (materialized scores).
void scaled_dot_product_attention(const AttentionArgs& args,
                                  const AttentionOptions& options,
                                  ThreadPool& pool);

// The naive reference: materializes each query row's scores, softmax, weighted sum
// (f64 accumulation). Single-threaded; tests and the scalar fallback use it.
void attention_reference(const AttentionArgs& args, const AttentionOptions& options);

}  // namespace lmx::cpu
