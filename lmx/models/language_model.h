// What every language model offers the generation engine: a forward pass over token
// ids with per-layer caches, the cache kinds it needs, and its parameters by name.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lmx/nn/attention.h"
#include "lmx/nn/kv_cache.h"
#include "lmx/nn/module.h"

namespace lmx::models {

// Tensors by checkpoint name, before they are assigned to parameters.
using WeightDict = std::map<std::string, Tensor>;

struct ForwardOptions {
  std::vector<Tensor>* hidden_states = nullptr;  // if set: embeddings, then each layer's output
  // Only the last position's logits ([batch, 1, vocab]): prefill chunks need none, and
  // the output projection of every prompt position would cost a vocab-sized GEMM.
  bool last_position_only = false;
  // Return the final-normed hidden state [batch, seq, hidden] instead of logits (embedders).
  bool hidden_only = false;
  // Vision-language models: replaces the (scaled) token embeddings [batch, seq, hidden]
  // before the first layer (image features go where the placeholders are).
  std::function<Tensor(Tensor)> edit_embeddings = {};
  // Vision-language models: replaces the output [batch, seq, hidden] of layer i (Qwen3-VL's
  // DeepStack adds image features of the vision tower's middle blocks there).
  std::function<Tensor(size_t, Tensor)> edit_layer_output = {};
  // Passed to every attention layer (M-RoPE rotations, bidirectional image blocks);
  // models whose layers cannot take it refuse it.
  const nn::AttentionContext* attention = nullptr;
};

class LanguageModel : public nn::Module {
 public:
  // tokens [batch, seq] (integer) -> logits [batch, seq, vocab] (f32). caches: one per
  // layer (from make_cache()), or null for a stateless causal pass.
  virtual Tensor forward(const Tensor& tokens, nn::KVCacheList* caches,
                         const ForwardOptions& options = {}) = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t num_layers() const = 0;
  // Sliding window of each layer's attention (0 = full attention): the cache kinds
  // generation must create (rotating caches for windowed layers).
  virtual std::vector<int64_t> layer_windows() const = 0;
  // The cache of layer i when the model decides it (recurrent layers: a state cache);
  // null leaves the choice to generation (a KV cache kind from layer_windows()).
  virtual std::unique_ptr<nn::KVCache> make_layer_cache(int64_t layer) const {
    (void)layer;
    return nullptr;
  }
  // Whether the keys of a position depend on the length of the pass that computes them
  // (RoPE scaled by the sequence length: dynamic NTK, longrope): then keys cached by one
  // request are not those another would compute, and the shared prefix cache skips it.
  virtual bool positions_depend_on_length() const { return false; }
  // Renames / drops / stacks checkpoint tensors into this model's parameter names
  // (tied embeddings, rotary_emb.inv_freq, per-expert weights).
  virtual void sanitize(WeightDict& weights) const { (void)weights; }
  // Called after loading: repack quantized weights for the fast kernels.
  void prepare_for_inference();
  const std::string& model_type() const { return model_type_; }

 protected:
  std::string model_type_;
};

// Repacks every quantized Linear / Embedding / expert weight of a module tree for the
// fast kernels of its device (what prepare_for_inference does for a LanguageModel).
void prepare_module_for_inference(nn::Module& module);

}  // namespace lmx::models
