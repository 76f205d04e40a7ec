// Vision transformers' patch embedding: a convolution whose stride equals its kernel,
// computed as one matrix product over flattened patches.
#pragma once

#include <vector>

#include "lmx/nn/module.h"

namespace lmx::nn {

class PatchEmbedding : public Module {
 public:
  // kernel: the convolution's kernel after the channel axis ({P, P}, or {T, P, P} for
  // Qwen2-VL's temporal patches). Checkpoint: "weight" [dim, channels, kernel...] and,
  // with bias, "bias" [dim].
  PatchEmbedding(int64_t channels, int64_t dim, std::vector<int64_t> kernel, bool bias);
  // patches [N, channels * prod(kernel)], flattened channel-major as the weight is
  // (Qwen2-VL's pixel_values) -> [N, dim].
  Tensor forward_patches(const Tensor& patches) const;
  // images [B, channels, H, W] (2-D kernels) -> [B, (H / P) * (W / P), dim], patches in
  // row-major order.
  Tensor forward_images(const Tensor& images) const;
  int64_t patch_elements() const { return patch_elements_; }

 private:
  Tensor weight_;  // [dim, channels, kernel...]
  Tensor bias_;    // [dim]
  int64_t channels_, dim_, patch_elements_;
  std::vector<int64_t> kernel_;
};

}  // namespace lmx::nn
