// Fine-tuning of a model split over tensor-parallel ranks (docs/tensor_parallel.md): LoRA,
// DoRA or full. Every rank trains the tensors its shard holds (its share of the whole
// model's adapters, or the weights its shard holds), on a thread of its own (train() with
// RankHooks), and the adapters file holds the whole model's tensors, the file whole-model
// training writes. How each rank holds a tensor (weight_shares.h) says what its gradient
// needs to be the whole model's: a partial one is summed over the ranks (all-reduce),
// outputs that several ranks hold are summed over their holders, the rest is the rank's
// own or already whole. So every rank's copy of a replicated tensor gets the same gradient
// and the same update.
// LoRA / DoRA adapters start as the whole model's would (make_lora's draws from the seed,
// for the whole model), each rank given its share; DoRA's norms of a row-parallel layer
// span the ranks' inputs, so the training forward adds the ranks' squared norms
// (differentiable_transformer.h) as attaching them does (split_adapters.h).
// Supported: the optimizers that update each element on its own (SGD, Adam, AdamW);
// Adafactor's factored statistics span whole matrices and are refused.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lmx/models/tensor_parallel_model.h"
#include "lmx/train/trainer.h"
#include "lmx/train/weight_shares.h"

namespace lmx::train {

// Fine-tuning of a split model: each rank's share of the adapters, or (full) its weights.
class SplitFineTune {
 public:
  // New adapters (LoRA / DoRA: make_lora's for the whole model from `seed`, each rank's
  // share; full: each rank's weights). Unsupported for full fine-tuning of quantized
  // layers; a split model of random weights is refused.
  SplitFineTune(models::TensorParallelLM& model, const LoraConfig& config, uint64_t seed = 0);
  // The whole model's LoRA / DoRA adapters (load_whole_adapters), each rank given its share.
  SplitFineTune(models::TensorParallelLM& model, const LoraAdapters& whole);
  // What a folder of load_adapters holds for the whole model (mlx-lm's LoRA, DoRA or full
  // fine-tuning files, PEFT's LoRA / DoRA), each rank given its share (--test of saved ones).
  static SplitFineTune saved(models::TensorParallelLM& model, const std::filesystem::path& dir);

  // --resume-adapter-file: the whole model's tensors read from `file` (resume_adapters'
  // checks, against the whole model's names and shapes), each rank given its share.
  void resume(const std::filesystem::path& file);

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
  const std::map<std::string, WeightShare>& shares(int r) const { return shares_.at(static_cast<size_t>(r)); }
  // The whole model's tensors (what is saved).
  LoraAdapters whole() const;
  int64_t parameter_count() const;  // of the whole model's trained tensors

 private:
  // Each rank's share of `whole` (the whole model's LoRA / DoRA adapters) on its device;
  // with `dora_magnitudes`, DoRA's m made from the rank's weights (the whole's m ignored).
  void share(const LoraAdapters& whole, bool dora_magnitudes);
  void make_shares();

  models::TensorParallelLM& model_;
  std::vector<LoraAdapters> ranks_;
  std::vector<std::map<std::string, WeightShare>> shares_;
};

}  // namespace lmx::train
