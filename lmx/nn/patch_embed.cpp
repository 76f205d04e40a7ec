#include "lmx/nn/patch_embed.h"

#include <string>

#include "lmx/base/error.h"
#include "lmx/core/ops/linalg.h"

namespace lmx::nn {

PatchEmbedding::PatchEmbedding(int64_t channels, int64_t dim, std::vector<int64_t> kernel, bool bias)
    : channels_(channels), dim_(dim), patch_elements_(channels), kernel_(std::move(kernel)) {
  Shape shape{dim, channels};
  for (int64_t k : kernel_) {
    if (k <= 0) throw FormatError("patch embedding: kernel sizes must be positive");
    shape.push_back(k);
    patch_elements_ *= k;
  }
  register_parameter("weight", weight_, shape);
  if (bias) register_parameter("bias", bias_, {dim});
}

Tensor PatchEmbedding::forward_patches(const Tensor& patches) const {
  if (patches.ndim() != 2 || patches.dim(1) != patch_elements_) {
    throw ShapeError("patch embedding: patches must be [N, " + std::to_string(patch_elements_) + "], got " +
                     shape_str(patches.shape()));
  }
  // In f32 whatever the checkpoint's dtype: the products of a few thousand pixels each.
  Tensor w = weight_.to(Dtype::f32).reshape({dim_, patch_elements_});
  return ops::linear(patches.to(Dtype::f32), w, bias_.defined() ? bias_.to(Dtype::f32) : bias_);
}

Tensor PatchEmbedding::forward_images(const Tensor& images) const {
  if (kernel_.size() != 2) throw InternalError("patch embedding: forward_images needs a 2-D kernel");
  const int64_t P = kernel_[0], Q = kernel_[1];
  if (images.ndim() != 4 || images.dim(1) != channels_ || images.dim(2) % P != 0 || images.dim(3) % Q != 0) {
    throw ShapeError("patch embedding: images must be [batch, " + std::to_string(channels_) +
                     ", H, W] with H, W multiples of the patch " + std::to_string(P) + "x" + std::to_string(Q) +
                     ", got " + shape_str(images.shape()));
  }
  const int64_t B = images.dim(0), gh = images.dim(2) / P, gw = images.dim(3) / Q;
  // [B, C, gh, P, gw, Q] -> [B, gh, gw, C, P, Q]: one row per patch, channel-major.
  Tensor patches = images.reshape({B, channels_, gh, P, gw, Q}).permute({0, 2, 4, 1, 3, 5}).contiguous();
  Tensor out = forward_patches(patches.reshape({B * gh * gw, patch_elements_}));
  return out.reshape({B, gh * gw, dim_});
}

}  // namespace lmx::nn
