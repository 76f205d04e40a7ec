// LoRA / DoRA adapters on a model split over tensor-parallel ranks (docs/tensor_parallel.md):
// the adapters of the whole model, checked against it, each rank given its share of the
// layers the sharding splits (models::shard_plan), applied without fusing as on a whole
// model:
// - column-parallel layers (q / k / v, gate / up, a vocabulary-parallel head): b's columns
//   (the outputs) and DoRA's m split like the weight's rows, a whole;
// - row-parallel layers (o_proj, down_proj): a's rows (the inputs) split like the weight's
//   columns, b and m whole; each rank's scale * (x_r a_r) b is added by the layer's
//   all-reduce, the bias (rank 0's only) once;
// - layers the sharding keeps whole keep their adapters whole.
// DoRA's row norm ||W + scale (a b)^T|| spans every input: a row-parallel layer's ranks
// each compute the squared norms over their columns and add them (one all-reduce per such
// layer, once at attach); a column-parallel rank holds whole rows and needs none.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "lmx/models/tensor_parallel.h"
#include "lmx/models/tensor_parallel_model.h"
#include "lmx/train/lora.h"

namespace lmx::train {

// Rank `rank`'s share of `whole` (LoRA / DoRA adapters made for the whole model) by that
// rank's `plan`. InvalidArgument naming the tensor whose size the split does not fit;
// Unsupported for full fine-tuning's weights.
LoraAdapters shard_adapters(const LoraAdapters& whole, const std::map<std::string, models::LayerSplit>& plan, int rank,
                            int world);

// The whole model's LoRA / DoRA adapters in `dir`: load_adapters against model.whole()
// (every check the whole model's: unknown layers, shapes). Unsupported for full
// fine-tuning's weights and a split model of random weights.
LoraAdapters load_whole_adapters(models::TensorParallelLM& model, const std::filesystem::path& dir);

// load_whole_adapters, then every rank's share attached to its shard on the rank's own thread.
void attach_split_adapters(models::TensorParallelLM& model, const std::filesystem::path& dir);

// A rank's DoRA squared row norms over every input of the layer from those over its own
// inputs: a row-parallel layer's (by the rank's `plan`) summed over the ranks (a
// collective: every rank calls it for the same layers in the same order), the others as
// they are.
LoraAdapters::SumSquares sum_squares_over_ranks(const std::map<std::string, models::LayerSplit>& plan,
                                                Communicator& comm);

}  // namespace lmx::train
