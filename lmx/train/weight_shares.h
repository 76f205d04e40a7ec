// How each rank of a split model (models::shard_plan) holds each tensor that fine-tuning
// trains, by the tensors' saved names: full fine-tuning's weights
// ("model.layers.3.self_attn.q_proj.weight") and LoRA / DoRA adapters
// ("...q_proj.lora_a", ".lora_b", ".m"). The share says what a rank's gradient needs to be
// the whole model's (split_training.h), how the ranks' tensors join into the whole model's
// (what is saved) and how the whole model's split into the ranks' (initial adapters, a
// resumed file):
// - a column-parallel layer (q / k / v, gate / up): its output features are the rank's own
//   (outputs): a weight's and bias's rows, lora_b's columns, DoRA's m. Outputs that several
//   ranks hold (a kv head replicated when there are fewer kv heads than ranks) get each
//   holder's part of the gradient, so the holders add them. lora_a is whole on every rank
//   and each rank's gradient covers only its outputs: partial, the ranks add them;
// - a row-parallel layer (o_proj, down_proj): its input features are the rank's own 1 /
//   world (split): a weight's columns, lora_a's rows. Its bias lives on rank 0 (rank0).
//   lora_b and m are whole, each rank's gradient from its part of the sum: partial;
// - replicated weights inside a split module (per-head q / k norms, a router and its
//   adapters): each rank's gradient covers only its heads or experts: partial;
// - stacked experts: the rank's 1 / world along axis 0 (split);
// - replicated weights outside a split module (the blocks' norms): the forward's
//   collectives (rank_autograd.h) already give every rank the whole gradient (whole).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "lmx/models/transformer.h"
#include "lmx/train/lora.h"

namespace lmx::train {

struct WeightShare {
  enum class Kind {
    whole,    // replicated outside the split modules: the whole gradient on every rank
    partial,  // replicated, each rank's gradient a part: the ranks' gradients add up
    outputs,  // a column-parallel layer's outputs: `ranges` of the whole's `axis`
    split,    // this rank's 1 / world of `axis` (row-parallel inputs, stacked experts)
    rank0,    // row-parallel bias: rank 0's
  } kind = Kind::whole;
  int axis = 0;                                     // outputs, split
  std::vector<std::pair<int64_t, int64_t>> ranges;  // outputs: of the whole's `axis`, in order
  int64_t whole_size = 0;                           // outputs: the whole's size along `axis`
  bool shared = false;                              // outputs: another rank holds some of them too
  std::vector<float> counted;  // shared outputs: 1 for each one no lower rank holds (the norm counts it once)
};

// How rank `rank` of `world` holds each of the tensors `names` of `whole`'s fine-tuning.
std::map<std::string, WeightShare> weight_shares(const models::TransformerLM& whole,
                                                 const std::vector<std::string>& names, int rank, int world);

// The ranks' tensors joined into the whole model's (on the CPU, shaped as rank 0's):
// outputs by their ranges, splits in rank order, the others rank 0's.
LoraAdapters join_ranks(const std::vector<const LoraAdapters*>& ranks,
                        const std::vector<std::map<std::string, WeightShare>>& shares);

// Rank `rank`'s part of the whole model's tensor (a copy): the inverse of join_ranks.
Tensor rank_share(const Tensor& whole, const WeightShare& share, int rank, int world);

}  // namespace lmx::train
