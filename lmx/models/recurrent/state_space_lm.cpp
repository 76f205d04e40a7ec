// mamba, mamba2 and nemotron_h: embeddings -> blocks of (RMSNorm, mixer) with a residual
// -> norm_f -> lm_head (often tied). The mixer of a block is a recurrent one (Mamba,
// Mamba2) or, in Nemotron-H, attention without positions, a plain MLP.

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/models/recurrent/mamba2_config.h"
#include "lmx/models/recurrent/recurrent_models.h"
#include "lmx/nn/attention.h"
#include "lmx/nn/mlp.h"
#include "lmx/nn/norm.h"
#include "lmx/nn/ssm/mamba2_mixer.h"
#include "lmx/nn/ssm/mamba_mixer.h"

namespace lmx::models::recurrent {
namespace {

// One block's mixer: exactly one of the three is set.
struct Mixer {
  std::unique_ptr<nn::RecurrentMixer> recurrent;
  std::unique_ptr<nn::Attention> attention;
  std::unique_ptr<nn::Mlp> mlp;
  nn::Module& module() const {
    if (recurrent) return *recurrent;
    if (attention) return *attention;
    return *mlp;
  }
};

// The mixer of block i.
using MixerFactory = Mixer (*)(const ConfigReader&, int64_t hidden, int64_t layer);

class StateSpaceLM : public LanguageModel {
 public:
  // prefix: the checkpoint's name of the body ("backbone" for mamba / mamba2, "model").
  StateSpaceLM(const ConfigReader& c, const std::string& type, const std::string& prefix, MixerFactory make_mixer)
      : prefix_(prefix), hidden_from_embeddings_(prefix != "backbone") {
    model_type_ = type;
    vocab_ = c.require_int("vocab_size");
    const int64_t hidden = c.require_int("hidden_size");
    // Nemotron-H configs may give the layer count only as the length of their block list.
    int64_t layers = 0;
    if (c.has("num_hidden_layers") || !c.has("layers_block_type")) {
      layers = c.require_int("num_hidden_layers");
    } else if (c.json().at("layers_block_type").is_array()) {
      layers = static_cast<int64_t>(c.json().at("layers_block_type").size());
    }
    if (vocab_ <= 0) c.fail("vocab_size", "must be positive");
    if (hidden <= 0) c.fail("hidden_size", "must be positive");
    if (layers <= 0 || layers > 4096) c.fail("num_hidden_layers", "must be in [1, 4096]");
    const auto eps = static_cast<float>(c.get_non_negative("layer_norm_epsilon", 1e-5));
    tied_ = c.get_bool("tie_word_embeddings", true);
    embed_ = std::make_unique<nn::Embedding>(vocab_, hidden);
    backbone_.register_module("embeddings", *embed_);
    for (int64_t i = 0; i < layers; ++i) {
      auto block = std::make_unique<Block>();
      block->norm = std::make_unique<nn::RMSNorm>(hidden, eps);
      block->mixer = make_mixer(c, hidden, i);
      block->register_module("norm", *block->norm);
      block->register_module("mixer", block->mixer.module());
      backbone_.register_module("layers." + std::to_string(i), *block);
      blocks_.push_back(std::move(block));
    }
    norm_f_ = std::make_unique<nn::RMSNorm>(hidden, eps);
    backbone_.register_module("norm_f", *norm_f_);
    register_module(prefix_, backbone_);
    if (!tied_) {
      lm_head_ = std::make_unique<nn::Linear>(hidden, vocab_, false);
      register_module("lm_head", *lm_head_);
    }
  }

  Tensor forward(const Tensor& tokens, nn::KVCacheList* caches, const ForwardOptions& options) override {
    if (tokens.ndim() != 2) throw ShapeError("forward: tokens must be [batch, seq], got " + shape_str(tokens.shape()));
    if (caches && caches->size() != blocks_.size()) {
      throw InvalidArgument("forward: " + std::to_string(caches->size()) + " caches for " +
                            std::to_string(blocks_.size()) + " layers");
    }
    Tensor h = embed_->forward(tokens);
    if (options.hidden_states && hidden_from_embeddings_) options.hidden_states->push_back(h);
    for (size_t i = 0; i < blocks_.size(); ++i) {
      const Mixer& m = blocks_[i]->mixer;
      nn::KVCache* cache = caches ? (*caches)[i].get() : nullptr;
      Tensor x = blocks_[i]->norm->forward(h);
      if (m.attention) {
        x = m.attention->forward(x, cache);
      } else {
        nn::StateCache* state = nn::as_state_cache(cache, model_type_.c_str());
        if (m.recurrent) {
          x = m.recurrent->forward(x, state);
        } else {
          x = m.mlp->forward(x);
          if (state) state->advance(x.dim(1));  // an empty state that only counts tokens
        }
      }
      h = ops::add(h, x);
      if (options.hidden_states) options.hidden_states->push_back(h);
    }
    if (options.last_position_only && h.dim(1) > 1) h = h.slice(1, h.dim(1) - 1, h.dim(1));
    h = norm_f_->forward(h);
    if (options.hidden_states) {
      // transformers' Mamba / Mamba2 report each block's output and then the normed one;
      // the others the embeddings, each block's output, the last one normed.
      if (hidden_from_embeddings_) {
        options.hidden_states->back() = h;
      } else {
        options.hidden_states->push_back(h);
      }
    }
    return lm_head_ ? lm_head_->forward(h) : embed_->as_linear(h);
  }

  int64_t vocab_size() const override { return vocab_; }
  int64_t num_layers() const override { return static_cast<int64_t>(blocks_.size()); }
  std::vector<int64_t> layer_windows() const override { return std::vector<int64_t>(blocks_.size(), 0); }
  // Attention blocks get KV caches from generation; the others a state cache (empty for
  // an MLP block: it only counts tokens, so every layer's offset() is the sequence length).
  std::unique_ptr<nn::KVCache> make_layer_cache(int64_t layer) const override {
    const Mixer& m = blocks_.at(static_cast<size_t>(layer))->mixer;
    if (m.attention) return nullptr;
    return std::make_unique<nn::StateCache>(m.recurrent ? m.recurrent->cache_arrays() : 0);
  }
  void sanitize(WeightDict& weights) const override {
    if (tied_) weights.erase("lm_head.weight");
    // Checkpoints name the body "backbone." or "model." depending on the exporter.
    const std::string other = prefix_ == "backbone" ? "model." : "backbone.";
    WeightDict renamed;
    for (auto& [name, w] : weights) {
      std::string n = name.rfind(other, 0) == 0 ? prefix_ + "." + name.substr(other.size()) : name;
      // The plain MLP block registers c_fc / c_proj (nn::Mlp); Nemotron-H names them up / down.
      for (const auto& [from, to] : {std::pair<std::string, std::string>{".mixer.up_proj.", ".mixer.c_fc."},
                                     {".mixer.down_proj.", ".mixer.c_proj."}}) {
        const size_t at = n.find(from);
        if (at != std::string::npos) n.replace(at, from.size(), to);
      }
      renamed[n] = w;
    }
    weights = std::move(renamed);
    // MLX exports store conv1d weights as [channels, kernel, 1] (MLX's conv layout).
    for (auto& [name, w] : weights) {
      if (name.size() > 19 && name.compare(name.size() - 19, 19, "mixer.conv1d.weight") == 0 && w.ndim() == 3 &&
          w.dim(2) == 1 && w.dim(1) > 1) {
        w = w.transpose(1, 2).contiguous();
      }
    }
  }

 private:
  struct Block : nn::Module {
    std::unique_ptr<nn::RMSNorm> norm;
    Mixer mixer;
    using nn::Module::register_module;
  };
  struct Prefix : nn::Module {
    using nn::Module::register_module;
  };
  std::string prefix_;
  bool hidden_from_embeddings_;  // hidden_states start with the embeddings (not Mamba / Mamba2)
  int64_t vocab_ = 0;
  bool tied_ = true;
  Prefix backbone_;
  std::unique_ptr<nn::Embedding> embed_;
  std::vector<std::unique_ptr<Block>> blocks_;
  std::unique_ptr<nn::RMSNorm> norm_f_;
  std::unique_ptr<nn::Linear> lm_head_;
};

Mixer mamba_mixer(const ConfigReader& c, int64_t hidden, int64_t) {
  nn::MambaOptions o;
  o.hidden = hidden;
  o.intermediate = static_cast<int64_t>(c.get_positive("expand", 2.0) * static_cast<double>(hidden));
  o.state = c.get_int("state_size", 16);
  o.conv_kernel = c.get_int("conv_kernel", 4);
  const bool auto_rank = c.json().contains("time_step_rank") && c.json()["time_step_rank"].is_string();
  o.dt_rank = auto_rank ? (hidden + 15) / 16 : c.get_int("time_step_rank", (hidden + 15) / 16);
  o.bias = c.get_bool("use_bias", false);
  o.conv_bias = c.get_bool("use_conv_bias", true);
  if (o.state <= 0) c.fail("state_size", "must be positive");
  if (o.conv_kernel <= 0) c.fail("conv_kernel", "must be positive");
  if (o.dt_rank <= 0) c.fail("time_step_rank", "must be positive");
  return {std::make_unique<nn::MambaMixer>(o), nullptr, nullptr};
}

Mixer mamba2_mixer(const ConfigReader& c, int64_t hidden, int64_t) {
  const nn::Mamba2Options o = read_mamba2_options(c, hidden, {"num_heads", "head_dim", "state_size"});
  return {std::make_unique<nn::Mamba2Mixer>(o), nullptr, nullptr};
}

// Nemotron-H's block types: "hybrid_override_pattern" (M mamba, * attention, - mlp) or
// transformers v5's "layers_block_type".
std::string nemotron_block_type(const ConfigReader& c, int64_t layer) {
  if (c.has("layers_block_type")) {
    const auto& types = c.json().at("layers_block_type");
    if (!types.is_array() || layer >= static_cast<int64_t>(types.size()) || !types[static_cast<size_t>(layer)].is_string()) {
      c.fail("layers_block_type", "must name every layer");
    }
    // transformers 5 names the kinds as layer types: linear_attention (Mamba2), full_attention.
    const std::string t = types[static_cast<size_t>(layer)].get<std::string>();
    if (t == "linear_attention") return "mamba";
    if (t == "full_attention") return "attention";
    return t;
  }
  const std::string pattern = c.get_string("hybrid_override_pattern", "");
  if (layer >= static_cast<int64_t>(pattern.size())) c.fail("hybrid_override_pattern", "must name every layer");
  switch (pattern[static_cast<size_t>(layer)]) {
    case 'M': return "mamba";
    case '*': return "attention";
    case '-': return "mlp";
    default: c.fail("hybrid_override_pattern", std::string("has unsupported block '") + pattern[static_cast<size_t>(layer)] +
                                                  "' (M, * and - are supported)");
  }
}

Mixer nemotron_h_mixer(const ConfigReader& c, int64_t hidden, int64_t layer) {
  const std::string type = nemotron_block_type(c, layer);
  Mixer m;
  if (type == "mamba") {
    Mamba2Keys keys{"mamba_num_heads", "mamba_head_dim", "ssm_state_size"};
    keys.expand = nullptr;  // the intermediate size is heads * head_dim
    nn::Mamba2Options o = read_mamba2_options(c, hidden, keys);
    o.norm_groups = o.groups;  // the gated norm works on intermediate / n_groups channels at a time
    m.recurrent = std::make_unique<nn::Mamba2Mixer>(o);
  } else if (type == "attention") {
    nn::AttentionOptions a;
    a.hidden = hidden;
    a.heads = c.require_int("num_attention_heads");
    a.kv_heads = c.get_int("num_key_value_heads", a.heads);
    a.head_dim = c.get_int("head_dim", a.heads > 0 ? hidden / a.heads : 0);
    a.qkv_bias = a.o_bias = c.get_bool("attention_bias", false);
    m.attention = std::make_unique<nn::Attention>(a);  // no rope: Nemotron-H attends without positions
  } else if (type == "mlp") {
    nn::MlpOptions o;
    o.kind = nn::MlpKind::plain;
    o.hidden = hidden;
    o.intermediate = c.require_int("intermediate_size");
    o.act = nn::parse_activation(c.get_string("mlp_hidden_act", "relu2"));
    o.bias = c.get_bool("mlp_bias", false);
    if (o.intermediate <= 0) c.fail("intermediate_size", "must be positive");
    m.mlp = std::make_unique<nn::Mlp>(o);
  } else {
    c.fail("layers_block_type", "has unsupported block type '" + type + "' (mamba, attention, mlp)");
  }
  return m;
}

}  // namespace

std::unique_ptr<LanguageModel> mamba(const ConfigReader& c) {
  return std::make_unique<StateSpaceLM>(c, "mamba", "backbone", mamba_mixer);
}

std::unique_ptr<LanguageModel> mamba2(const ConfigReader& c) {
  return std::make_unique<StateSpaceLM>(c, "mamba2", "backbone", mamba2_mixer);
}

std::unique_ptr<LanguageModel> nemotron_h(const ConfigReader& c) {
  return std::make_unique<StateSpaceLM>(c, "nemotron_h", "model", nemotron_h_mixer);
}

}  // namespace lmx::models::recurrent
