// The forward pass of a TransformerLM written with lmx/core/autograd, so gradients reach
// LoRA adapters (and, through frozen layers, the activations below them). It reads the
// model's own modules and weights (nothing is copied) and computes what
// TransformerLM::forward computes without a cache. Supported: RMS norms at any of the
// four places (Gemma's unit offset), separate q/k/v projections with optional biases and
// q/k norms, RoPE, causal attention with sliding windows and logit soft-capping, SwiGLU
// / GeGLU MLPs, sparse MoE blocks with softmax top-k routing (Mixtral, Qwen-MoE, OLMoE
// style, no shared experts), tied or separate output projection, embedding / residual /
// logit scales, final logit soft-capping. Anything else throws Unsupported at
// construction, naming the feature.
//
// On one rank of a split model (a shard of models/tensor_parallel.h, through the shard's
// communicator) it computes that rank's part as TransformerLM::forward does, the
// collectives made differentiable (rank_autograd.h): the attention and MLP inputs' gradients
// added over the ranks, their outputs summed, a vocabulary-parallel embedding summed
// (frozen) and its head's logits gathered; a mixture of experts runs the rank's experts.
// A rank's LoRA / DoRA adapters are its share (weight_shares.h): a row-parallel layer's
// DoRA norms add the ranks' squared norms (one all-reduce per layer and forward).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "lmx/core/autograd/variable.h"
#include "lmx/models/transformer.h"
#include "lmx/train/lora.h"

namespace lmx::ops {
class RandomGenerator;
}

namespace lmx::train {

struct TrainingForwardOptions {
  bool grad_checkpoint = false;
  int64_t loss_chunk_rows = 0;  // rows per chunk of loss(); 0: about 64 MiB of f32 logits
};

class DifferentiableTransformer {
 public:
  // grad_checkpoint: keep only each block's input and recompute the block's forward in
  // the backward (autograd::checkpoint): the blocks give the same gradients bit for bit,
  // for about one more forward, with one block's activations alive at a time.
  // loss() then also takes the output head and cross-entropy in chunks of rows, each
  // chunk's logits recomputed in the backward, so no [tokens, vocab] buffer is alive.
  using Options = TrainingForwardOptions;
  explicit DifferentiableTransformer(models::TransformerLM& model, Options options = {});
  // tokens [batch, seq] -> logits [batch, seq, vocab]. Adapters (may be null) are applied
  // to their layers, or their full-fine-tuning weights replace the model's; dropout
  // draws from `rng` when given (training), none otherwise.
  autograd::Var forward(const Tensor& tokens, const LoraAdapters* lora, ops::RandomGenerator* rng) const;
  // The masked cross-entropy of the logits of `tokens` [batch, seq] against `targets`
  // [batch * seq] weighted by `weights` [batch * seq] (autograd::cross_entropy), chunked
  // under grad_checkpoint (equal to the unchunked loss up to f32 rounding).
  autograd::Var loss(const Tensor& tokens, const Tensor& targets, const Tensor& weights, const LoraAdapters* lora,
                     ops::RandomGenerator* rng) const;

 private:
  // The final hidden states (after the last norm) and the logits of those.
  autograd::Var hidden(const Tensor& tokens, const LoraAdapters* lora, ops::RandomGenerator* rng) const;
  autograd::Var head(const autograd::Var& h, const LoraAdapters* lora, ops::RandomGenerator* rng) const;
  // Block i: h + attention(...) -> + mlp / experts (with the spec's norms and scales).
  autograd::Var block(int64_t i, const autograd::Var& h, const LoraAdapters* lora, ops::RandomGenerator* rng) const;
  // Block i under autograd::checkpoint, its adapters passed as the checkpoint's inputs.
  autograd::Var checkpointed_block(int64_t i, const autograd::Var& h, const LoraAdapters* lora,
                                   ops::RandomGenerator* rng) const;
  // `row_parallel`: on a split model, a projection of the rank's share of the inputs whose
  // output the ranks add (o_proj, down_proj): its DoRA norms span every rank's inputs (the
  // ranks' squared norms added) and its dropout mask is the rank's columns of the whole
  // input's (so that the ranks draw what the whole model does).
  autograd::Var project(const std::string& path, const autograd::Var& x, const LoraAdapters* lora,
                        ops::RandomGenerator* rng, bool row_parallel = false) const;
  autograd::Var norm(const std::string& path, const autograd::Var& x, const LoraAdapters* lora) const;
  autograd::Var attention(int64_t layer, const autograd::Var& x, const LoraAdapters* lora,
                          ops::RandomGenerator* rng) const;
  autograd::Var mlp(int64_t layer, const autograd::Var& x, const LoraAdapters* lora, ops::RandomGenerator* rng) const;
  autograd::Var experts(int64_t layer, const autograd::Var& x, const LoraAdapters* lora,
                        ops::RandomGenerator* rng) const;
  autograd::Var expert_projection(const std::string& path, int64_t e, const autograd::Var& x) const;
  // A split model's collectives (the identity on a whole model): a split module's input,
  // whose gradient the ranks add, and its output, the ranks' partial sums added.
  autograd::Var split_input(const autograd::Var& x) const;
  autograd::Var split_output(const autograd::Var& x) const;
  // Dropout of a row-parallel projection's input (the rank's columns of the whole input).
  autograd::Var rank_dropout(const autograd::Var& x, float p, ops::RandomGenerator& rng) const;

  models::TransformerLM& model_;
  Options options_;
  Communicator* comm_ = nullptr;  // the shard's (null: a whole model)
  std::map<std::string, nn::Linear*> linears_;
  std::map<std::string, Tensor*> params_;
  std::map<std::string, nn::SwitchLinear*> switches_;
  const nn::Embedding* embed_ = nullptr;
  std::vector<std::unique_ptr<nn::RotaryEmbedding>> ropes_;
};

}  // namespace lmx::train
