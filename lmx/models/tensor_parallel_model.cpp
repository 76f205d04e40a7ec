#include "lmx/models/tensor_parallel_model.h"

#include <optional>
#include <string>
#include <utility>

#include "lmx/base/error.h"
#include "lmx/models/registry.h"
#include "lmx/models/tensor_parallel.h"
#include "lmx/models/transformer.h"

namespace lmx::models {

std::unique_ptr<TensorParallelLM> TensorParallelLM::assemble(
    int world, Device device, const std::function<std::unique_ptr<LanguageModel>(Communicator&, Device)>& make_rank) {
  if (world < 1) throw InvalidArgument("tensor parallel: " + std::to_string(world) + " ranks (1 or more)");
  std::unique_ptr<TensorParallelLM> model(new TensorParallelLM());
  // Rank r on the CPU (threads of a ThreadGroup), or on the device `device` + r (an NCCL
  // group on CUDA: `--device cuda:1 --tensor-parallel 2` takes cuda:1 and cuda:2).
  std::vector<Device> devices;
  for (int r = 0; r < world; ++r) devices.push_back(device.is_cpu() ? device : Device{device.type, device.index + r});
  if (device.is_cpu()) {
    model->group_ = std::make_unique<ThreadGroup>(world);
  } else {
    model->group_ = std::make_unique<DeviceGroup>(devices);
  }
  for (int r = 0; r < world; ++r) {
    model->comms_.push_back(&model->group_->communicator(r));
    model->ranks_.push_back(make_rank(*model->comms_.back(), devices[static_cast<size_t>(r)]));
    model->register_module("rank" + std::to_string(r), *model->ranks_.back());
  }
  model->model_type_ = model->ranks_.front()->model_type();
  // Where each layer's kv heads went (the shards' specs say): how the caches split and join.
  for (size_t l = 0; l < static_cast<size_t>(model->num_layers()); ++l) {
    std::vector<RankHeads> heads;
    for (const auto& rank : model->ranks_) {
      const LayerSpec& ls = static_cast<const TransformerLM&>(*rank).spec().layers.at(l);
      heads.push_back({ls.kv_head_begin, ls.attention.kv_heads});
    }
    model->layer_heads_.push_back(std::move(heads));
  }
  return model;
}

std::unique_ptr<TensorParallelLM> TensorParallelLM::load(const std::filesystem::path& dir, const LoadOptions& options) {
  LoadOptions rank_options = options;
  rank_options.tensor_parallel = 1;
  auto model = assemble(options.tensor_parallel, options.device, [&](Communicator& comm, Device device) {
    rank_options.device = device;
    return load_model_shard(dir, comm, rank_options).model;
  });
  const io::ModelFolder folder = io::ModelFolder::open(dir);
  std::unique_ptr<LanguageModel> whole =
      create_model(ConfigReader(folder.text_config(), (dir / "config.json").string()));
  model->whole_.reset(static_cast<TransformerLM*>(whole.release()));  // a TransformerLM: its ranks loaded
  return model;
}

void TensorParallelLM::on_ranks(const std::function<void(int, TransformerLM&, Communicator&)>& fn) {
  run_on_ranks(comms_, [&](int r) {
    fn(r, static_cast<TransformerLM&>(*ranks_[static_cast<size_t>(r)]), *comms_[static_cast<size_t>(r)]);
    return Tensor();
  });
}

std::unique_ptr<TensorParallelLM> TensorParallelLM::random(const ConfigReader& config, int world,
                                                           const RandomInitOptions& options) {
  std::unique_ptr<LanguageModel> whole = create_model(config);  // no weights: the names and sizes
  auto* full = dynamic_cast<TransformerLM*>(whole.get());
  if (!full) {
    throw Unsupported("tensor parallel: " + whole->model_type() + " is not a decoder transformer; only those are split");
  }
  return assemble(world, options.device, [&](Communicator& comm, Device device) {
    auto shard = std::make_unique<TransformerLM>(shard_spec(full->spec(), comm.rank(), comm.world()));
    shard->set_communicator(&comm);
    RandomInitOptions o = options;
    o.device = device;
    o.seed = options.seed + static_cast<uint64_t>(comm.rank());
    randomize_model(*shard, o);
    return std::unique_ptr<LanguageModel>(std::move(shard));
  });
}

// The shards hold pointers to the group's communicators: they go first.
TensorParallelLM::~TensorParallelLM() { ranks_.clear(); }

namespace {

// Each rank's per-layer caches, moved out of the layers' TensorParallelCaches for one
// forward and back in afterwards (also when a rank throws). A cache in the whole model's
// layout (fresh, or holding positions) is split by heads first.
class RankCacheLists {
 public:
  RankCacheLists(nn::KVCacheList& caches, const TensorParallelLM& model)
      : caches_(caches), lists_(static_cast<size_t>(model.world())) {
    if (static_cast<int64_t>(caches_.size()) != model.num_layers()) {
      throw InvalidArgument("tensor parallel: " + std::to_string(caches_.size()) + " caches for " +
                            std::to_string(model.num_layers()) + " layers");
    }
    for (size_t i = 0; i < caches_.size(); ++i) {
      auto& c = caches_[i];
      if (!c) throw InvalidArgument("tensor parallel: layer " + std::to_string(i) + " has no cache");
      if (!dynamic_cast<TensorParallelCache*>(c.get())) c = std::make_unique<TensorParallelCache>(*c, model.layer_heads(i));
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
  if (caches) lists.emplace(*caches, *this);
  const std::vector<Tensor> out = run_on_ranks(comms_, [&](int r) {
    ForwardOptions o = options;
    if (r != 0) o.hidden_states = nullptr;  // every rank's are the same: rank 0 writes them
    return ranks_[static_cast<size_t>(r)]->forward(tokens, lists ? lists->of(r) : nullptr, o);
  });
  return out.front();
}

}  // namespace lmx::models
