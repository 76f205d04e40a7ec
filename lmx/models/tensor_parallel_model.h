// A decoder split over the ranks of a tensor-parallel group that answers as one
// LanguageModel (issue 24, docs/tensor_parallel.md): generation, ChatSession, the batch
// scheduler (lmx serve) and the CLI use it as any model. Each forward runs every rank's
// shard on a thread of its own (run_on_ranks), each rank with its own caches, and returns
// rank 0's logits (after the head's all-gather every rank holds the same).
//
// Callers hand it caches in the whole model's layout (fresh ones of generation's kind, or
// ones holding positions: read from a prompt-cache file, seeded from the prefix cache,
// rows joined to a batch); a forward splits each by kv heads into a TensorParallelCache
// (one cache a rank) that stays in the caller's list and reads back in the whole model's
// layout (state(), row_state()). The ranks are threads of this process: on the CPU with a
// ThreadGroup, on GPUs one device a rank with the backend's collectives (DeviceGroup:
// NCCL on CUDA).
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <vector>

#include "lmx/core/communicator.h"
#include "lmx/models/config_reader.h"
#include "lmx/models/language_model.h"
#include "lmx/models/load.h"
#include "lmx/models/random_init.h"
#include "lmx/models/tensor_parallel_cache.h"
#include "lmx/models/transformer.h"

namespace lmx::models {

class TensorParallelLM : public LanguageModel {
 public:
  // The folder as options.tensor_parallel ranks (load_model_shard each): on the CPU, or on
  // options.device and the next devices of its type. Unsupported for what is not split yet
  // (named); one rank is a group too (the wiring, on a machine with one GPU).
  static std::unique_ptr<TensorParallelLM> load(const std::filesystem::path& dir, const LoadOptions& options);
  // Random weights of a config's shape over `world` ranks (lmx bench --config): each rank's
  // shard is made and randomized on its own (seed + rank) on options.device + rank, so the
  // ranks are not the split of one whole model: for timings, whose speed does not depend
  // on the values.
  static std::unique_ptr<TensorParallelLM> random(const ConfigReader& config, int world,
                                                  const RandomInitOptions& options);
  ~TensorParallelLM() override;

  Tensor forward(const Tensor& tokens, nn::KVCacheList* caches, const ForwardOptions& options = {}) override;
  int64_t vocab_size() const override { return ranks_.front()->vocab_size(); }
  int64_t num_layers() const override { return ranks_.front()->num_layers(); }
  std::vector<int64_t> layer_windows() const override { return ranks_.front()->layer_windows(); }
  bool positions_depend_on_length() const override { return ranks_.front()->positions_depend_on_length(); }
  int world() const { return static_cast<int>(ranks_.size()); }
  // Layer i's kv heads on each rank.
  const std::vector<RankHeads>& layer_heads(size_t i) const { return layer_heads_.at(i); }
  // The whole model of the folder, built without weights (names and sizes): what adapters
  // are checked against before they are sliced (lmx/train/split_adapters.h, with
  // shard_plan). Null for random() (its ranks are no split of one model).
  TransformerLM* whole() { return whole_.get(); }
  // fn(rank, its shard, its communicator) on every rank, each on a thread of its own, so
  // that a collective inside fn has every rank; the lowest failing rank's error is rethrown.
  void on_ranks(const std::function<void(int, TransformerLM&, Communicator&)>& fn);

 private:
  TensorParallelLM() = default;
  // The group of `world` ranks on `device` and the next devices of its type, each rank's
  // shard made by make_rank(its communicator, its device).
  static std::unique_ptr<TensorParallelLM> assemble(
      int world, Device device, const std::function<std::unique_ptr<LanguageModel>(Communicator&, Device)>& make_rank);

  std::unique_ptr<TransformerLM> whole_;
  std::unique_ptr<CommunicatorGroup> group_;
  std::vector<Communicator*> comms_;  // group_'s, rank order (run_on_ranks takes them)
  std::vector<std::unique_ptr<LanguageModel>> ranks_;
  std::vector<std::vector<RankHeads>> layer_heads_;  // [layer][rank]
};

}  // namespace lmx::models
