// Tensor parallelism (issue 24, docs/tensor_parallel.md): a decoder split over the ranks
// of a Communicator's group, Megatron-style. Each rank holds
// - its share of the attention heads: q (and k / v, or the kv heads it needs when there
//   are fewer kv heads than ranks, replicated) column-parallel, o_proj row-parallel;
// - its share of the MLP's intermediate features: gate / up column-parallel, down
//   row-parallel;
// - with a vocabulary the ranks divide, its rows of the embedding and of the output head
//   (vocabulary-parallel; else both are whole on every rank);
// - everything else (norms, rotary tables, learned positions) whole.
// The ranks add their row-parallel outputs (one all-reduce after the attention and one
// after the MLP of each layer, one after the embedding) and join the head's logits (one
// all-gather). Quantized MLX weights split along whole quantization groups.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "lmx/core/communicator.h"
#include "lmx/models/load.h"
#include "lmx/models/transformer.h"

namespace lmx::models {

// Rank `rank` of `world`'s spec. Unsupported names the first part that is not split yet
// (latent attention, norms over a whole projection, ...), and
// InvalidArgument a size the ranks do not divide.
TransformerSpec shard_spec(const TransformerSpec& full, int rank, int world);

// Rank `rank`'s weights from the full model's sanitized ones (`full` gives the names and
// sizes): every split tensor sliced, a row-parallel layer's bias kept on rank 0 only.
WeightDict shard_weights(const TransformerLM& full, const WeightDict& weights, int rank, int world);

// How rank `rank` holds a split layer (a Linear) of the whole model: column-parallel, the
// output features in `outputs` ([begin, end) ranges of the whole layer's, joined in order);
// or row-parallel, its 1 / world of the inputs ([rank * in / world, (rank + 1) * in / world))
// with its output summed over the ranks (its bias on rank 0 only).
struct LayerSplit {
  bool row = false;
  std::vector<std::pair<int64_t, int64_t>> outputs;  // column-parallel only
};
// By the layer's path ("model.layers.3.self_attn.o_proj"), from the rules that shard_weights
// follows; a layer not listed is whole on every rank (norms' neighbours, routers, a head
// that is not vocabulary-parallel). What adapters on a split model slice by.
std::map<std::string, LayerSplit> shard_plan(const TransformerLM& full, int rank, int world);

// A model folder loaded as rank comm.rank() of comm.world(): its config's model built
// twice (whole, holding nothing, for the names; and the rank's shard), the mapped weights
// sanitized, sliced, loaded and prepared on options.device. The model runs its collectives
// through `comm`, which must outlive it.
LoadedModel load_model_shard(const std::filesystem::path& dir, Communicator& comm, const LoadOptions& options = {});

}  // namespace lmx::models
