#include "lmx/models/tensor_parallel.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/core/backend.h"
#include "lmx/core/ops/shape.h"
#include "lmx/models/config_reader.h"
#include "lmx/models/registry.h"
#include "lmx/models/text_part.h"

namespace lmx::models {
namespace {

std::string n_of(int64_t v) { return std::to_string(v); }

void check_group(int rank, int world) {
  if (world < 1 || rank < 0 || rank >= world) {
    throw InvalidArgument("tensor parallel: rank " + n_of(rank) + " of " + n_of(world) + " ranks");
  }
}

void need_divisible(int64_t n, int world, const std::string& what, const std::string& model) {
  if (n % world != 0) {
    throw InvalidArgument("tensor parallel: " + model + "'s " + what + " (" + n_of(n) + ") is not divisible by " +
                          n_of(world) + " ranks");
  }
}

// How the kv heads go to the ranks: each rank its share, or, with fewer kv heads than
// ranks, each rank the one kv head its query heads read (replicated).
struct KvSplit {
  int64_t local = 0;  // kv heads on a rank
  int64_t first = 0;  // this rank's first kv head
};

KvSplit kv_split(const nn::AttentionOptions& o, int rank, int world, const std::string& model) {
  need_divisible(o.heads, world, "attention heads", model);
  if (o.kv_heads >= world) {
    need_divisible(o.kv_heads, world, "key-value heads", model);
    return {o.kv_heads / world, rank * (o.kv_heads / world)};
  }
  need_divisible(world, static_cast<int>(o.kv_heads), "rank count over its key-value heads", model);
  const int64_t q_per_kv = o.heads / o.kv_heads;
  return {1, (rank * (o.heads / world)) / q_per_kv};
}

void check_attention(const nn::AttentionOptions& o, const std::string& model) {
  auto refuse = [&](const std::string& what) {
    throw Unsupported("tensor parallel: " + model + "'s attention has " + what + ", which is not split yet");
  };
  if (o.qk_norm == nn::QkNorm::full) refuse("a q / k norm over the whole projection");
  if (o.sub_norm) refuse("a norm before its output projection");
  if (o.output_gate) refuse("an output gate");
  if (o.kv_shared) refuse("keys and values shared across layers");
}

void check_mlp(const nn::MlpOptions& o, const std::string& model) {
  if (o.sub_norm_eps > 0.0f) {
    throw Unsupported("tensor parallel: " + model + "'s MLP has a norm over its intermediate features, not split yet");
  }
  if (o.activation_sparsity > 0.0f) {
    throw Unsupported("tensor parallel: " + model + "'s MLP has activation sparsity (statistics over a whole row), "
                      "not split yet");
  }
}

bool vocab_splits(const TransformerSpec& s, int world) { return world > 1 && s.vocab % world == 0; }

// Rows [begin, end) of t along `axis`, as a contiguous tensor of its own.
Tensor part(const Tensor& t, int axis, int64_t begin, int64_t end) { return t.slice(axis, begin, end).contiguous(); }

// The concatenation of row ranges of t (axis 0), each [begin, end).
Tensor rows(const Tensor& t, const std::vector<std::pair<int64_t, int64_t>>& ranges) {
  std::vector<Tensor> parts;
  for (const auto& [b, e] : ranges) parts.push_back(part(t, 0, b, e));
  return parts.size() == 1 ? parts[0] : ops::concat(parts, 0).contiguous();
}

// The tensors of one layer (path) in `weights`: the weight and, when quantized, its
// scales and biases (affine offsets), all laid out [out, ...].
std::vector<std::string> matrix_names(const WeightDict& weights, const std::string& path) {
  std::vector<std::string> names;
  for (const char* suffix : {".weight", ".scales", ".biases"}) {
    if (weights.count(path + suffix)) names.push_back(path + suffix);
  }
  return names;
}

// Slices the weights by the rules below and records each split layer in `plan` (when
// given); `plan_only` records without slicing (no weights needed: shard_plan).
class Slicer {
 public:
  Slicer(const WeightDict& in, WeightDict& out, int rank, int world, std::string model,
         std::map<std::string, LayerSplit>* plan = nullptr, bool plan_only = false)
      : in_(in), out_(out), rank_(rank), world_(world), model_(std::move(model)), plan_(plan), plan_only_(plan_only) {}

  bool plan_only() const { return plan_only_; }

  const Tensor& get(const std::string& name) const {
    auto it = in_.find(name);
    if (it == in_.end()) throw FormatError("tensor parallel: " + model_ + " has no tensor " + name);
    return it->second;
  }

  // Output features (rows) of a layer: `ranges` in units of output features, and its bias.
  void column(const std::string& path, const std::vector<std::pair<int64_t, int64_t>>& ranges) {
    if (plan_) (*plan_)[path] = {false, ranges};
    if (plan_only_) return;
    const std::vector<std::string> names = matrix_names(in_, path);
    if (names.empty()) throw FormatError("tensor parallel: " + model_ + " has no weight " + path + ".weight");
    for (const std::string& n : names) out_[n] = rows(in_.at(n), ranges);
    if (in_.count(path + ".bias")) out_[path + ".bias"] = rows(in_.at(path + ".bias"), ranges);
  }

  // Input features (the last axis) of a layer, this rank's 1 / world of them (whole
  // quantization groups: the packed words and the scales must both divide); its bias on
  // rank 0 only, so that the ranks' sum adds it once.
  void row(const std::string& path) {
    if (plan_) (*plan_)[path] = {true, {}};
    if (plan_only_) return;
    const std::vector<std::string> names = matrix_names(in_, path);
    if (names.empty()) throw FormatError("tensor parallel: " + model_ + " has no weight " + path + ".weight");
    for (const std::string& n : names) {
      const Tensor& t = in_.at(n);
      const int64_t cols = t.dim(-1);
      if (cols % world_ != 0) {
        throw InvalidArgument("tensor parallel: " + n + " has " + n_of(cols) + " columns, not divisible by " +
                              n_of(world_) + " ranks (a quantized layer splits along whole groups)");
      }
      const int64_t w = cols / world_;
      out_[n] = part(t, static_cast<int>(t.ndim()) - 1, rank_ * w, (rank_ + 1) * w);
    }
    if (in_.count(path + ".bias")) {
      const Tensor& b = in_.at(path + ".bias");
      out_[path + ".bias"] = rank_ == 0 ? b : Tensor::zeros(b.shape(), b.dtype());
    }
  }

  void vector(const std::string& name, int64_t begin, int64_t end) {
    if (!plan_only_ && in_.count(name)) out_[name] = part(in_.at(name), 0, begin, end);
  }

  // Per-head norm scales: one [heads, D] tensor, or one "norms.<h>.weight" per head
  // (renumbered from 0 on each rank).
  void heads(const std::string& path, int64_t total, int64_t begin, int64_t count, bool split) {
    if (plan_only_) return;
    if (!split) {
      vector(path + ".weight", begin, begin + count);
      return;
    }
    for (int64_t h = 0; h < total; ++h) out_.erase(path + ".norms." + n_of(h) + ".weight");
    for (int64_t h = 0; h < count; ++h) out_[path + ".norms." + n_of(h) + ".weight"] = get(path + ".norms." + n_of(begin + h) + ".weight");
  }

 private:
  const WeightDict& in_;
  WeightDict& out_;
  const int rank_, world_;
  const std::string model_;
  std::map<std::string, LayerSplit>* plan_;
  const bool plan_only_;
};

void shard_attention(Slicer& s, const std::string& path, const nn::AttentionOptions& o, int rank, int world,
                     const std::string& model) {
  const int64_t D = o.head_dim, hl = o.heads / world;
  const KvSplit kv = kv_split(o, rank, world, model);
  const std::pair<int64_t, int64_t> q{rank * hl * D, (rank + 1) * hl * D};
  const std::pair<int64_t, int64_t> k{kv.first * D, (kv.first + kv.local) * D};
  if (o.fused_qkv && o.qkv_per_head) {  // per head [q_h k_h v_h]
    s.column(path + "." + o.qkv_name, {{rank * hl * 3 * D, (rank + 1) * hl * 3 * D}});
  } else if (o.fused_qkv) {  // [q | k | v]
    const int64_t qd = o.heads * D, kd = o.kv_heads * D;
    s.column(path + "." + o.qkv_name, {q, {qd + k.first, qd + k.second}, {qd + kd + k.first, qd + kd + k.second}});
  } else {
    s.column(path + ".q_proj", {q});
    s.column(path + ".k_proj", {k});
    if (!o.values_from_keys) s.column(path + ".v_proj", {k});
  }
  s.row(path + "." + o.o_name);
  if (o.sinks) s.vector(path + ".sinks", rank * hl, (rank + 1) * hl);
  if (o.qk_norm == nn::QkNorm::head_wise_layer) {
    s.heads(path + "." + o.q_norm_name, o.heads, rank * hl, hl, o.qk_norm_split);
    s.heads(path + "." + o.k_norm_name, o.kv_heads, kv.first, kv.local, o.qk_norm_split);
  }
}

void shard_mlp(Slicer& s, const std::string& path, const nn::MlpOptions& o, int rank, int world) {
  const int64_t il = o.intermediate / world;
  const std::pair<int64_t, int64_t> mine{rank * il, (rank + 1) * il};
  auto name = [](const std::string& given, const char* usual) { return given.empty() ? std::string(usual) : given; };
  switch (o.kind) {
    case nn::MlpKind::gated:
      s.column(path + "." + name(o.gate_name, "gate_proj"), {mine});
      s.column(path + "." + name(o.up_name, "up_proj"), {mine});
      s.row(path + "." + name(o.down_name, "down_proj"));
      break;
    case nn::MlpKind::fused_gated:  // [gate | up]
      s.column(path + "." + name(o.gate_name, "gate_up_proj"),
               {mine, {o.intermediate + mine.first, o.intermediate + mine.second}});
      s.row(path + "." + name(o.down_name, "down_proj"));
      break;
    case nn::MlpKind::plain:
      s.column(path + "." + name(o.up_name, "c_fc"), {mine});
      s.row(path + "." + name(o.down_name, "c_proj"));
      break;
  }
}

// A mixture of experts split by experts (expert parallelism): each rank holds experts
// [rank * E / world, (rank + 1) * E / world) of every stacked expert tensor (weight, scales,
// biases, bias: [experts, ...]) and adds only the chosen ones among them; the router (and a
// correction bias or per-expert scale) stays whole on every rank, so every rank routes alike.
// Shared experts split as a dense MLP, their gate (a [1, hidden] projection) whole.
void shard_moe(Slicer& s, const WeightDict& weights, WeightDict& out, const std::string& path,
               const nn::MoeOptions& o, int rank, int world) {
  const int64_t local = o.experts / world;
  for (const char* proj : {".gate_proj", ".up_proj", ".down_proj"}) {
    if (s.plan_only()) break;  // stacked experts are no Linear layers
    const std::string base = path + "." + o.experts_name + proj;
    const std::vector<std::string> names = matrix_names(weights, base);
    if (names.empty()) throw FormatError("tensor parallel: no stacked experts " + base + ".weight");
    for (const std::string& n : names) out[n] = part(weights.at(n), 0, rank * local, (rank + 1) * local);
    if (weights.count(base + ".bias")) out[base + ".bias"] = part(weights.at(base + ".bias"), 0, rank * local, (rank + 1) * local);
  }
  if (o.shared_intermediate > 0) {
    nn::MlpOptions m;
    m.kind = nn::MlpKind::gated;
    m.intermediate = o.shared_intermediate;
    shard_mlp(s, path + "." + o.shared_name, m, rank, world);
  }
}

}  // namespace

TransformerSpec shard_spec(const TransformerSpec& full, int rank, int world) {
  check_group(rank, world);
  if (full.shard.world != 1) throw InvalidArgument("tensor parallel: " + full.model_type + " is already a shard");
  TransformerSpec s = full;
  s.shard.rank = rank;
  s.shard.world = world;
  s.shard.full_vocab = full.vocab;
  if (vocab_splits(full, world)) {
    s.shard.vocab_parallel = true;
    s.vocab = full.vocab / world;
    s.shard.vocab_begin = rank * s.vocab;
  }
  for (LayerSpec& ls : s.layers) {
    if (ls.mla) throw Unsupported("tensor parallel: " + full.model_type + "'s latent attention is not split yet");
    check_attention(ls.attention, full.model_type);
    const KvSplit kv = kv_split(ls.attention, rank, world, full.model_type);
    ls.attention.heads /= world;
    ls.attention.kv_heads = kv.local;
    ls.kv_head_begin = kv.first;
    if (ls.moe) {
      nn::MoeOptions& o = ls.moe_options;
      if (o.local_experts != 0) throw InvalidArgument("tensor parallel: " + full.model_type + "'s experts are already split");
      need_divisible(o.experts, world, "expert count", full.model_type);
      o.local_experts = o.experts / world;
      o.expert_begin = rank * o.local_experts;
      need_divisible(o.shared_intermediate, world, "shared experts' intermediate size", full.model_type);
      o.shared_intermediate /= world;
      continue;
    }
    check_mlp(ls.mlp, full.model_type);
    need_divisible(ls.mlp.intermediate, world, "intermediate size", full.model_type);
    ls.mlp.intermediate /= world;
  }
  return s;
}

namespace {

// The one walk over the layers that both the weights and the plan follow.
void shard_into(const TransformerLM& full, const WeightDict& weights, WeightDict& out, Slicer& s, int rank, int world) {
  const TransformerSpec& spec = full.spec();
  const std::string& model = spec.model_type;
  for (size_t l = 0; l < spec.layers.size(); ++l) {
    const LayerSpec& ls = spec.layers[l];
    const std::string layer = spec.body_name + "." + spec.layers_name + "." + std::to_string(l) + ".";
    shard_attention(s, layer + spec.attn_name, ls.attention, rank, world, model);
    if (ls.moe) {
      shard_moe(s, weights, out, layer + spec.mlp_name, ls.moe_options, rank, world);
    } else {
      shard_mlp(s, layer + spec.mlp_name, ls.mlp, rank, world);
    }
  }
  if (vocab_splits(spec, world)) {
    const int64_t v = spec.vocab / world;
    const std::string embed = spec.body_name + "." + spec.embed_name;
    for (const std::string& n : matrix_names(weights, embed)) out[n] = rows(weights.at(n), {{rank * v, (rank + 1) * v}});
    if (!spec.tie_embeddings) s.column(spec.lm_head_name, {{rank * v, (rank + 1) * v}});
  }
}

}  // namespace

WeightDict shard_weights(const TransformerLM& full, const WeightDict& weights, int rank, int world) {
  check_group(rank, world);
  WeightDict out = weights;  // what no rule splits stays whole (norms, positions)
  Slicer s(weights, out, rank, world, full.spec().model_type);
  shard_into(full, weights, out, s, rank, world);
  return out;
}

std::map<std::string, LayerSplit> shard_plan(const TransformerLM& full, int rank, int world) {
  check_group(rank, world);
  std::map<std::string, LayerSplit> plan;
  const WeightDict none;
  WeightDict unused;
  Slicer s(none, unused, rank, world, full.spec().model_type, &plan, true);
  shard_into(full, none, unused, s, rank, world);
  return plan;
}

LoadedModel load_model_shard(const std::filesystem::path& dir, Communicator& comm, const LoadOptions& options) {
  backend_for(options.device);
  LoadedModel out{nullptr, io::ModelFolder::open(dir)};
  const std::string source = (dir / "config.json").string();
  ConfigReader config(out.folder.text_config(), source);
  std::unique_ptr<LanguageModel> whole = create_model(config);
  auto* full = dynamic_cast<TransformerLM*>(whole.get());
  if (!full) {
    throw Unsupported("tensor parallel: " + whole->model_type() + " (" + dir.string() +
                      ") is not a decoder transformer; only those are split across GPUs yet");
  }
  WeightDict weights = read_weights(out.folder);
  keep_text_part(out.folder.raw_config(), weights);
  full->sanitize(weights);
  auto shard = std::make_unique<TransformerLM>(shard_spec(full->spec(), comm.rank(), comm.world()));
  WeightDict mine = shard_weights(*full, weights, comm.rank(), comm.world());
  weights.clear();
  load_module_weights(*shard, std::move(mine), out.folder.raw_config(), dir.string(), shard->model_type());
  shard->set_communicator(&comm);
  if (!options.device.is_cpu()) shard->to(options.device);
  if (options.prepare) shard->prepare_for_inference();
  out.model = std::move(shard);
  return out;
}

}  // namespace lmx::models
