// Normalization layers over the last axis.
#pragma once

#include "lmx/nn/module.h"

namespace lmx::nn {

class RMSNorm : public Module {
 public:
  // unit_offset: the stored weight w scales by (1 + w) (Gemma).
  RMSNorm(int64_t dim, float eps, bool unit_offset = false);
  Tensor forward(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }

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
  Norm(NormKind kind, int64_t dim, float eps, bool unit_offset = false, bool bias = true);
  Tensor forward(const Tensor& x) const { return rms_ ? rms_->forward(x) : ln_->forward(x); }
  Tensor operator()(const Tensor& x) const { return forward(x); }

 private:
  std::unique_ptr<RMSNorm> rms_;
  std::unique_ptr<LayerNorm> ln_;
};

}  // namespace lmx::nn
