// The forward pass of a TransformerLM written with lmx/core/autograd, so gradients reach
// LoRA adapters (and, through frozen layers, the activations below them). It reads the
// model's own modules and weights (nothing is copied) and computes what
// TransformerLM::forward computes without a cache. The llama family of the spec is
// supported: RMS norms at any of the four places, separate q/k/v projections with optional
// biases and q/k norms, RoPE, causal full attention, SwiGLU MLPs, tied or separate output
// projection, embedding / residual / logit scales. Anything else throws Unsupported at
// construction, naming the feature.
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

class DifferentiableTransformer {
 public:
  explicit DifferentiableTransformer(models::TransformerLM& model);
  // tokens [batch, seq] -> logits [batch, seq, vocab]. Adapters (may be null) are applied
  // to their layers, or their full-fine-tuning weights replace the model's; dropout
  // draws from `rng` when given (training), none otherwise.
  autograd::Var forward(const Tensor& tokens, const LoraAdapters* lora, ops::RandomGenerator* rng) const;

 private:
  autograd::Var project(const std::string& path, const autograd::Var& x, const LoraAdapters* lora,
                        ops::RandomGenerator* rng) const;
  autograd::Var norm(const std::string& path, const autograd::Var& x, const LoraAdapters* lora) const;
  autograd::Var attention(int64_t layer, const autograd::Var& x, const LoraAdapters* lora,
                          ops::RandomGenerator* rng) const;

  models::TransformerLM& model_;
  std::map<std::string, nn::Linear*> linears_;
  std::map<std::string, Tensor*> params_;
  std::vector<std::unique_ptr<nn::RotaryEmbedding>> ropes_;
};

}  // namespace lmx::train
