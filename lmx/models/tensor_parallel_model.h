// A decoder split over the ranks of a tensor-parallel group that answers as one
// LanguageModel (issue 24, docs/tensor_parallel.md): generation, ChatSession and the CLI
// use it as any model. Each forward runs every rank's shard on a thread of its own
// (run_on_ranks), each rank with its own caches, and returns rank 0's logits (after the
// head's all-gather every rank holds the same).
//
// The caches generation makes (one per layer, of the kind it chose: simple, rotating,
// quantized) become rank 0's on the first forward; the other ranks get empty copies of
// them (TensorParallelCache holds all of a layer's). The ranks are threads of this process:
// on the CPU with a ThreadGroup, on GPUs one device a rank with the backend's collectives
// (DeviceGroup: NCCL on CUDA).
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include "lmx/core/communicator.h"
#include "lmx/models/language_model.h"
#include "lmx/models/load.h"
#include "lmx/nn/kv_cache.h"

namespace lmx::models {

class TensorParallelLM : public LanguageModel {
 public:
  // The folder as options.tensor_parallel ranks (load_model_shard each): on the CPU, or on
  // options.device and the next devices of its type. Unsupported for what is not split yet
  // (named); one rank is a group too (the wiring, on a machine with one GPU).
  static std::unique_ptr<TensorParallelLM> load(const std::filesystem::path& dir, const LoadOptions& options);
  ~TensorParallelLM() override;

  Tensor forward(const Tensor& tokens, nn::KVCacheList* caches, const ForwardOptions& options = {}) override;
  int64_t vocab_size() const override { return ranks_.front()->vocab_size(); }
  int64_t num_layers() const override { return ranks_.front()->num_layers(); }
  std::vector<int64_t> layer_windows() const override { return ranks_.front()->layer_windows(); }
  bool positions_depend_on_length() const override { return ranks_.front()->positions_depend_on_length(); }
  int world() const { return static_cast<int>(ranks_.size()); }

 private:
  TensorParallelLM() = default;
  std::unique_ptr<CommunicatorGroup> group_;
  std::vector<Communicator*> comms_;  // group_'s, rank order (run_on_ranks takes them)
  std::vector<std::unique_ptr<LanguageModel>> ranks_;
};

// One layer's caches, one per rank; offset, trim and copy act on all of them. state() lists
// every rank's buffers (rank 0's first) for the memory accounting; prompt-cache files do
// not take them (saves_to_prompt_cache).
class TensorParallelCache : public nn::KVCache {
 public:
  explicit TensorParallelCache(std::vector<std::unique_ptr<nn::KVCache>> ranks) : ranks_(std::move(ranks)) {}
  int64_t offset() const override { return ranks_.front()->offset(); }
  std::pair<Tensor, Tensor> update_and_fetch(const Tensor& keys, const Tensor& values) override;
  std::vector<int64_t> left_padding() const override { return ranks_.front()->left_padding(); }
  bool is_trimmable() const override;
  int64_t trim(int64_t n) override;
  std::vector<Tensor> state() const override;
  bool saves_to_prompt_cache() const override { return false; }
  std::string class_name() const override { return "TensorParallelCache"; }
  std::unique_ptr<nn::KVCache> copy() const override;
  std::vector<std::unique_ptr<nn::KVCache>>& ranks() { return ranks_; }

 private:
  std::vector<std::unique_ptr<nn::KVCache>> ranks_;
};

}  // namespace lmx::models
