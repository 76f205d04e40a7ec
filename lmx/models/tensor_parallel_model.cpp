#include "lmx/models/tensor_parallel_model.h"

#include <optional>
#include <string>
#include <utility>

#include "lmx/base/error.h"
#include "lmx/models/tensor_parallel.h"

namespace lmx::models {

std::unique_ptr<TensorParallelLM> TensorParallelLM::load(const std::filesystem::path& dir, const LoadOptions& options) {
  const int world = options.tensor_parallel;
  if (world < 1) throw InvalidArgument("tensor parallel: " + std::to_string(world) + " ranks (1 or more)");
  std::unique_ptr<TensorParallelLM> model(new TensorParallelLM());
  // Rank r on the CPU (threads of a ThreadGroup), or on the device options.device + r (an
  // NCCL group on CUDA: `--device cuda:1 --tensor-parallel 2` takes cuda:1 and cuda:2).
  std::vector<Device> devices;
  for (int r = 0; r < world; ++r) devices.push_back(options.device.is_cpu() ? options.device
                                                    : Device{options.device.type, options.device.index + r});
  if (options.device.is_cpu()) {
    model->group_ = std::make_unique<ThreadGroup>(world);
  } else {
    model->group_ = std::make_unique<DeviceGroup>(devices);
  }
  LoadOptions rank_options = options;
  rank_options.tensor_parallel = 1;
  for (int r = 0; r < world; ++r) {
    model->comms_.push_back(&model->group_->communicator(r));
    rank_options.device = devices[static_cast<size_t>(r)];
    model->ranks_.push_back(load_model_shard(dir, *model->comms_.back(), rank_options).model);
    model->register_module("rank" + std::to_string(r), *model->ranks_.back());
  }
  model->model_type_ = model->ranks_.front()->model_type();
  return model;
}

// The shards hold pointers to the group's communicators: they go first.
TensorParallelLM::~TensorParallelLM() { ranks_.clear(); }

namespace {

// Each rank's per-layer caches, moved out of the layers' TensorParallelCaches for one
// forward and back in afterwards (also when a rank throws).
class RankCacheLists {
 public:
  RankCacheLists(nn::KVCacheList& caches, int world) : caches_(caches), lists_(static_cast<size_t>(world)) {
    for (auto& c : caches_) {
      if (!dynamic_cast<TensorParallelCache*>(c.get())) {
        if (!c || c->offset() != 0) {
          throw Unsupported("tensor parallel: a cache that already holds positions (a prompt cache from a file?) "
                            "cannot be split over the ranks; start from fresh caches");
        }
        // A fresh cache of generation's kind: rank 0's, with empty copies for the others.
        std::vector<std::unique_ptr<nn::KVCache>> ranks;
        for (int r = 1; r < world; ++r) ranks.push_back(c->copy());
        ranks.insert(ranks.begin(), std::move(c));
        c = std::make_unique<TensorParallelCache>(std::move(ranks));
      }
      if (static_cast<TensorParallelCache&>(*c).ranks().size() != lists_.size()) {
        throw InvalidArgument("tensor parallel: a cache of another rank count");
      }
    }
    // Nothing throws from here on: the destructor puts every moved cache back.
    for (auto& c : caches_) {
      auto& ranks = static_cast<TensorParallelCache&>(*c).ranks();
      for (size_t r = 0; r < lists_.size(); ++r) lists_[r].push_back(std::move(ranks[r]));
    }
  }
  ~RankCacheLists() {
    for (size_t i = 0; i < caches_.size(); ++i) {
      auto& ranks = static_cast<TensorParallelCache&>(*caches_[i]).ranks();
      for (size_t r = 0; r < lists_.size(); ++r) {
        if (i < lists_[r].size()) ranks[r] = std::move(lists_[r][i]);
      }
    }
  }
  RankCacheLists(const RankCacheLists&) = delete;
  RankCacheLists& operator=(const RankCacheLists&) = delete;
  nn::KVCacheList* of(int rank) { return &lists_[static_cast<size_t>(rank)]; }

 private:
  nn::KVCacheList& caches_;
  std::vector<nn::KVCacheList> lists_;
};

}  // namespace

Tensor TensorParallelLM::forward(const Tensor& tokens, nn::KVCacheList* caches, const ForwardOptions& options) {
  if (options.edit_embeddings || options.edit_layer_output || options.attention) {
    throw Unsupported("tensor parallel: embedding / layer edits and attention contexts (vision-language models)");
  }
  std::optional<RankCacheLists> lists;
  if (caches) lists.emplace(*caches, world());
  const std::vector<Tensor> out = run_on_ranks(comms_, [&](int r) {
    ForwardOptions o = options;
    if (r != 0) o.hidden_states = nullptr;  // every rank's are the same: rank 0 writes them
    return ranks_[static_cast<size_t>(r)]->forward(tokens, lists ? lists->of(r) : nullptr, o);
  });
  return out.front();
}

std::pair<Tensor, Tensor> TensorParallelCache::update_and_fetch(const Tensor& keys, const Tensor& values) {
  (void)keys;
  (void)values;
  throw Unsupported("TensorParallelCache: each rank's attention uses its own cache");
}

bool TensorParallelCache::is_trimmable() const {
  for (const auto& c : ranks_) {
    if (!c->is_trimmable()) return false;
  }
  return true;
}

int64_t TensorParallelCache::trim(int64_t n) {
  int64_t dropped = 0;
  for (auto& c : ranks_) dropped = c->trim(n);
  return dropped;
}

std::vector<Tensor> TensorParallelCache::state() const {
  std::vector<Tensor> out;
  for (const auto& c : ranks_) {
    for (Tensor& t : c->state()) out.push_back(std::move(t));
  }
  return out;
}

std::unique_ptr<nn::KVCache> TensorParallelCache::copy() const {
  std::vector<std::unique_ptr<nn::KVCache>> ranks;
  for (const auto& c : ranks_) ranks.push_back(c->copy());
  return std::make_unique<TensorParallelCache>(std::move(ranks));
}

}  // namespace lmx::models
