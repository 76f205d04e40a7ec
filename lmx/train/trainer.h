// The training loop (mlx-lm's `lora --train`): batches in a seeded order, masked
// cross-entropy averaged over the counted tokens, the optimizer at the scheduled learning
// rate (every `grad_accumulation_steps` batches, on the mean of their gradients, as
// mlx-lm counts iterations in batches), reports every few steps, validation loss every
// few steps, adapters saved every few steps and at the end. A loss that is not finite
// stops training with an error; the adapters saved last stay as they are. A stop request
// (Ctrl-C) ends training after the current batch with the adapters saved.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmx/train/dataset.h"
#include "lmx/train/differentiable_transformer.h"
#include "lmx/train/optimizer.h"

namespace lmx::train {

struct TrainOptions {
  int64_t batch_size = 4;
  int64_t iters = 1000;
  int64_t steps_per_report = 10;
  int64_t steps_per_eval = 200;
  int64_t val_batches = 25;  // -1: the whole validation set
  int64_t save_every = 100;  // 0: only at the end
  int64_t grad_accumulation_steps = 1;
  int64_t max_seq_length = 2048;
  bool mask_prompt = false;
  double grad_clip = 0.0;  // max global gradient norm; 0: no clipping
  uint64_t seed = 0;
  Schedule schedule;
  OptimizerOptions optimizer;
  std::filesystem::path adapter_path;  // empty: nothing saved
  nlohmann::json config_extra = nlohmann::json::object();  // more keys for adapter_config.json
  // Polled after each batch; true stops training early (the adapters are saved).
  std::function<bool()> stop_requested;
};

struct TrainReport {
  enum class Kind { train, validation, save } kind = Kind::train;
  int64_t iteration = 0;  // updates done
  double loss = 0.0;      // mean over the report window (train) or the validation set
  double learning_rate = 0.0;
  double iterations_per_second = 0.0;
  double tokens_per_second = 0.0;
  int64_t trained_tokens = 0;  // counted targets so far
  size_t peak_memory = 0;      // bytes (CPU allocator's high-water mark)
  std::filesystem::path saved;  // the adapters file written (save)
};

// What train() does as one rank of a split model (split_training.h): every rank runs
// train() on a thread of its own with the same options and data, and makes these calls at
// the same points (each is a collective of the ranks).
struct RankHooks {
  // After a step's gradients are in (before clipping): each trainable leaf's gradient
  // made the whole model's.
  std::function<void()> sync_gradients;
  // The whole model's squared gradient norm (--grad-clip).
  std::function<double()> squared_grad_norm;
  // Whether any rank's flag is set (rank 0's stop request, for every rank).
  std::function<bool(bool)> any;
  // Writes the whole model's adapters (rank 0 joins every rank's) as save_adapters does.
  std::function<void(const std::filesystem::path& dir, const nlohmann::json& extra, const std::string& weights_name)>
      save;
  // This rank reports (on_report), polls stop_requested and writes the loss curve: rank 0.
  bool main = true;
};

struct TrainResult {
  double initial_validation_loss = 0.0;
  double final_validation_loss = 0.0;
  int64_t iterations = 0;
  bool stopped = false;  // by stop_requested
};

// Mean loss per counted token over up to `num_batches` batches (-1: all), no gradients.
double evaluate(const DifferentiableTransformer& model, const LoraAdapters* adapters, const std::vector<Example>& data,
                int64_t batch_size, int64_t num_batches, int64_t max_seq_length, bool mask_prompt);

// `ranks`: this is one rank of a split model (null: a whole model).
TrainResult train(const DifferentiableTransformer& model, LoraAdapters& adapters, const std::vector<Example>& train_set,
                  const std::vector<Example>& valid_set, const TrainOptions& options,
                  const std::function<void(const TrainReport&)>& on_report = {}, const RankHooks* ranks = nullptr);

}  // namespace lmx::train
