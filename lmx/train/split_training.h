// Full fine-tuning of a model split over tensor-parallel ranks (docs/tensor_parallel.md):
// every rank trains the weights its shard holds, on a thread of its own (train() with
// RankHooks), and the adapters file holds the whole model's weights, the file whole-model
// training writes. How each rank holds a weight of the trained blocks (WeightShare) says
// what its gradient needs to be the whole model's:
// - column-parallel rows (q / k / v, gate / up) and row-parallel columns (o_proj,
//   down_proj), a rank's experts: its own slice, nothing to add. Rows that several ranks
//   hold (a kv head replicated when there are fewer kv heads than ranks) get each holder's
//   part, so the holders add them (one all-reduce of the whole layer's gradient);
// - a row-parallel bias lives on rank 0 (the others' zeros stay untrained);
// - replicated weights inside a split module (per-head q / k norms, a router): each rank's
//   gradient covers only its heads or experts, so the ranks add them (all-reduce);
// - replicated weights outside one (the blocks' norms): the forward's collectives
//   (rank_autograd.h) already give every rank the whole gradient, nothing to add (adding
//   would count it N times).
// So every rank's copy of a replicated weight gets the same gradient and the same update.
// Supported: the optimizers that update each element on its own (SGD, Adam, AdamW);
// Adafactor's factored statistics span whole matrices and are refused, as are LoRA / DoRA.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "lmx/models/tensor_parallel_model.h"
#include "lmx/train/trainer.h"

namespace lmx::train {

struct WeightShare {
  enum class Kind {
    whole,    // replicated outside the split modules: the whole gradient on every rank
    partial,  // replicated inside a split module: the ranks' gradients add up
    rows,     // column-parallel: rows `ranges` of the whole [out, ...]
    columns,  // row-parallel weight: this rank's 1 / world of the last axis
    rank0,    // row-parallel bias: rank 0's
    experts,  // stacked experts: this rank's 1 / world of axis 0
  } kind = Kind::whole;
  std::vector<std::pair<int64_t, int64_t>> ranges;  // rows: of the whole's rows, in order
  int64_t whole_rows = 0;                           // rows: the whole's
  bool shared = false;                              // rows: another rank holds some of them too
  std::vector<float> counted;  // shared rows: 1 for each row no lower rank holds (the norm counts it once)
};

// How rank `rank` of `world` holds each of the weights `names` of `whole` (names of its
// parameters, as full fine-tuning's).
std::map<std::string, WeightShare> weight_shares(const models::TransformerLM& whole,
                                                 const std::vector<std::string>& names, int rank, int world);

// The ranks' weights joined into the whole model's (on the CPU): rows by their ranges,
// columns and experts in rank order, the others rank 0's.
LoraAdapters join_ranks(const std::vector<const LoraAdapters*>& ranks,
                        const std::vector<std::map<std::string, WeightShare>>& shares);

// Full fine-tuning of a split model: each rank's weights (make_lora on its shard).
class SplitFineTune {
 public:
  // Unsupported for LoRA / DoRA and quantized layers; a split model of random weights is refused.
  SplitFineTune(models::TensorParallelLM& model, const LoraConfig& config);

  // train() on every rank (reports from rank 0); the saved adapters are the whole model's.
  // Unsupported for Adafactor.
  TrainResult train(const std::vector<Example>& train_set, const std::vector<Example>& valid_set,
                    const TrainOptions& options, const TrainingForwardOptions& forward = {},
                    const std::function<void(const TrainReport&)>& on_report = {});
  // evaluate() with the trained weights (rank 0's value; every rank's is the same).
  double evaluate(const std::vector<Example>& data, int64_t batch_size, int64_t num_batches, int64_t max_seq_length,
                  bool mask_prompt);

  int world() const { return static_cast<int>(ranks_.size()); }
  LoraAdapters& rank(int r) { return ranks_.at(static_cast<size_t>(r)); }
  // The whole model's weights (what is saved).
  LoraAdapters whole() const;
  int64_t parameter_count() const;  // of the whole model's trained weights

 private:
  models::TensorParallelLM& model_;
  std::vector<LoraAdapters> ranks_;
  std::vector<std::map<std::string, WeightShare>> shares_;
};

}  // namespace lmx::train
