#include "lmx/models/vlm/vit_tower.h"

#include <string>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/shape.h"

namespace lmx::models::vlm {

VitTowerOptions read_vit_tower(const ConfigReader& v, bool clip) {
  VitTowerOptions o;
  o.clip = clip;
  o.hidden = v.get_int("hidden_size", 768);
  o.heads = v.get_int("num_attention_heads", 12);
  o.intermediate = v.get_int("intermediate_size", 3072);
  o.layers = v.get_int("num_hidden_layers", 12);
  o.image_size = v.get_int("image_size", 224);
  o.patch = v.get_int("patch_size", clip ? 32 : 16);
  o.channels = v.get_int("num_channels", 3);
  o.norm_eps = static_cast<float>(v.get_non_negative("layer_norm_eps", clip ? 1e-5 : 1e-6));
  o.act = nn::parse_activation(v.get_string("hidden_act", clip ? "quick_gelu" : "gelu_pytorch_tanh"));
  if (o.image_size <= 0 || o.patch <= 0 || o.image_size % o.patch != 0) {
    v.fail("image_size", "must be a positive multiple of patch_size");
  }
  if (o.layers <= 0) v.fail("num_hidden_layers", "must be positive");
  return o;
}

VitTower::Embeddings::Embeddings(const VitTowerOptions& o) {
  patch = std::make_unique<nn::PatchEmbedding>(o.channels, o.hidden, std::vector<int64_t>{o.patch, o.patch}, !o.clip);
  const int64_t side = o.image_size / o.patch;
  positions = std::make_unique<nn::Embedding>(side * side + (o.clip ? 1 : 0), o.hidden);
  if (o.clip) register_parameter("class_embedding", class_embedding, {o.hidden});
  register_module("patch_embedding", *patch);
  register_module("position_embedding", *positions);
}

VitTower::Encoder::Encoder(const VitTowerOptions& o) {
  nn::VisionBlockOptions bo{.hidden = o.hidden, .heads = o.heads, .intermediate = o.intermediate,
                            .norm = nn::NormKind::layer, .norm_eps = o.norm_eps, .act = o.act};
  for (int64_t i = 0; i < o.layers; ++i) {
    layers.push_back(std::make_unique<nn::VisionBlock>(bo));
    register_module("layers." + std::to_string(i), *layers.back());
  }
}

VitTower::VitTower(const VitTowerOptions& o) : o_(o) {
  embeddings_ = std::make_unique<Embeddings>(o);
  register_module("embeddings", *embeddings_);
  if (o.clip) {
    pre_norm_ = std::make_unique<nn::LayerNorm>(o.hidden, o.norm_eps);
    register_module("pre_layrnorm", *pre_norm_);  // transformers' spelling
  }
  encoder_ = std::make_unique<Encoder>(o);
  register_module("encoder", *encoder_);
  post_norm_ = std::make_unique<nn::LayerNorm>(o.hidden, o.norm_eps);
  register_module("post_layernorm", *post_norm_);
}

Tensor VitTower::embed(const Tensor& pixel_values) const {
  const int64_t n = o_.image_size;
  if (pixel_values.ndim() != 4 || pixel_values.dim(1) != o_.channels || pixel_values.dim(2) != n ||
      pixel_values.dim(3) != n) {
    throw ShapeError("pixel_values must be [images, " + std::to_string(o_.channels) + ", " + std::to_string(n) +
                     ", " + std::to_string(n) + "] for this vision tower, got " + shape_str(pixel_values.shape()));
  }
  const int64_t B = pixel_values.dim(0);
  Tensor x = embeddings_->patch->forward_images(pixel_values);  // [B, patches, hidden]
  if (o_.clip) {
    Tensor cls = embeddings_->class_embedding.to(x.dtype()).reshape({1, 1, o_.hidden}).expand({B, 1, o_.hidden});
    x = ops::concat({cls, x}, 1);
  }
  Tensor ids = Tensor::arange(x.dim(1)).reshape({1, x.dim(1)});
  x = ops::add(x, embeddings_->positions->forward(ids));
  return pre_norm_ ? pre_norm_->forward(x) : x;
}

std::vector<Tensor> VitTower::hidden_states(const Tensor& pixel_values, int64_t up_to) const {
  if (up_to < 0 || up_to > o_.layers) {
    throw InvalidArgument("vision tower: layer " + std::to_string(up_to) + " of " + std::to_string(o_.layers));
  }
  std::vector<Tensor> out{embed(pixel_values)};
  for (int64_t i = 0; i < up_to; ++i) out.push_back(encoder_->layers[static_cast<size_t>(i)]->forward(out.back()));
  return out;
}

Tensor VitTower::last_hidden_state(const Tensor& pixel_values) const {
  return post_norm_->forward(hidden_states(pixel_values, o_.layers).back());
}

}  // namespace lmx::models::vlm
