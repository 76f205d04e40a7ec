// Normalization layers over the last axis.
#pragma once

#include <vector>

#include "lmx/core/ops/linear_input.h"
#include "lmx/nn/module.h"

namespace lmx::nn {

class RMSNorm : public Module {
 public:
  // unit_offset: the stored weight w scales by (1 + w) (Gemma). weight false: no
  // learned scale at all (NanoChat).
  RMSNorm(int64_t dim, float eps, bool unit_offset = false, bool weight = true);
  Tensor forward(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }
  // forward(x + residual), with x + residual in *sum (one pass: ops::add_rms_norm).
  Tensor forward_sum(const Tensor& x, const Tensor& residual, Tensor* sum) const;
  // forward(x) or forward_sum(x, residual, sum) (residual defined) not yet run: the
  // linears that read it may run it inside their first pass (ops::LinearInput).
  ops::LinearInput deferred(const Tensor& x, const Tensor& residual, Tensor* sum) const;

 private:
  Tensor weight_;  // [dim]
  float eps_;
  bool unit_offset_;
};

class LayerNorm : public Module {
 public:
  LayerNorm(int64_t dim, float eps, bool bias = true);
  Tensor forward(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }

 private:
  Tensor weight_;  // [dim]
  Tensor bias_;    // [dim]
  float eps_;
};

// Either kind, chosen by the architecture.
enum class NormKind { rms, layer };

class Norm : public Module {
 public:
  Norm(NormKind kind, int64_t dim, float eps, bool unit_offset = false, bool bias = true, bool weight = true);
  Tensor forward(const Tensor& x) const { return rms_ ? rms_->forward(x) : ln_->forward(x); }
  Tensor operator()(const Tensor& x) const { return forward(x); }
  // forward(x + residual), with x + residual in *sum (fused for RMSNorm).
  Tensor forward_sum(const Tensor& x, const Tensor& residual, Tensor* sum) const;
  // The same not yet run where it is an RMSNorm (RMSNorm::deferred); run now otherwise.
  ops::LinearInput deferred(const Tensor& x, const Tensor& residual, Tensor* sum) const;

 private:
  std::unique_ptr<RMSNorm> rms_;
  std::unique_ptr<LayerNorm> ln_;
};

// LayerNorm over the last axis of x [batch, heads, seq, dim] with a scale of its own for
// each head and no bias (StableLM, Cohere q/k norms). The scales are stored as one
// "weight" [heads, dim] or, split, as "norms.<h>.weight" [dim] (StableLM's ModuleList).
class PerHeadLayerNorm : public Module {
 public:
  PerHeadLayerNorm(int64_t heads, int64_t dim, float eps, bool split);
  Tensor forward(const Tensor& x) const;

 private:
  Tensor weight_;                // [heads, dim] (not split)
  std::vector<Tensor> weights_;  // heads x [dim] (split)
  int64_t heads_, dim_;
  float eps_;
};

}  // namespace lmx::nn
