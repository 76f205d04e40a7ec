#include "lmx/models/vlm/pixtral_tower.h"

#include <cmath>
#include <string>

#include "lmx/base/error.h"
#include "lmx/core/ops/shape.h"
#include "lmx/models/vlm/vision_language_model.h"
#include "lmx/nn/rope.h"

namespace lmx::models::vlm {

PixtralOptions read_pixtral(const ConfigReader& v) {
  PixtralOptions o;
  o.hidden = v.get_int("hidden_size", 1024);
  o.heads = v.get_int("num_attention_heads", 16);
  o.intermediate = v.get_int("intermediate_size", 4096);
  o.layers = v.get_int("num_hidden_layers", 24);
  o.patch = v.get_int("patch_size", 16);
  o.channels = v.get_int("num_channels", 3);
  o.act = nn::parse_activation(v.get_string("hidden_act", "silu"));
  o.theta = v.get_positive("rope_theta", 10000.0);
  if (auto rope = v.object("rope_parameters")) o.theta = rope->get_positive("rope_theta", o.theta);
  if (o.heads <= 0 || o.hidden % o.heads != 0 || (o.hidden / o.heads) % 4 != 0) {
    v.fail("num_attention_heads", "must divide hidden_size into heads of a multiple of 4 dims");
  }
  if (o.patch <= 0) v.fail("patch_size", "must be positive");
  if (o.layers <= 0) v.fail("num_hidden_layers", "must be positive");
  return o;
}

std::vector<std::pair<int64_t, int64_t>> read_image_sizes(const Tensor& image_sizes, const Tensor& pixel_values,
                                                          int64_t patch) {
  if (pixel_values.ndim() != 4) {
    throw ShapeError("pixel_values must be [images, channels, H, W], got " + shape_str(pixel_values.shape()));
  }
  std::vector<std::pair<int64_t, int64_t>> out;
  if (!image_sizes.defined()) {  // unpadded images: the whole of each
    out.assign(static_cast<size_t>(pixel_values.dim(0)), {pixel_values.dim(2), pixel_values.dim(3)});
  } else {
    if (image_sizes.ndim() != 2 || image_sizes.dim(1) != 2 || image_sizes.dim(0) != pixel_values.dim(0)) {
      throw ShapeError("image_sizes must be [" + std::to_string(pixel_values.dim(0)) + ", 2], got " +
                       shape_str(image_sizes.shape()));
    }
    const std::vector<float> v = image_sizes.to(Dtype::f32).to_float_vector();
    for (size_t i = 0; i < v.size(); i += 2) out.emplace_back(static_cast<int64_t>(v[i]), static_cast<int64_t>(v[i + 1]));
  }
  for (size_t i = 0; i < out.size(); ++i) {
    const auto [h, w] = out[i];
    if (h < patch || w < patch || h % patch != 0 || w % patch != 0 || h > pixel_values.dim(2) ||
        w > pixel_values.dim(3)) {
      throw InvalidArgument("image_sizes row " + std::to_string(i) + " (" + std::to_string(h) + ", " +
                            std::to_string(w) + ") must be multiples of the patch " + std::to_string(patch) +
                            " within pixel_values' " + std::to_string(pixel_values.dim(2)) + "x" +
                            std::to_string(pixel_values.dim(3)));
    }
  }
  return out;
}

PixtralTower::Transformer::Transformer(const PixtralOptions& o) {
  nn::VisionBlockOptions bo{.hidden = o.hidden, .heads = o.heads, .intermediate = o.intermediate,
                            .norm = nn::NormKind::rms, .norm_eps = 1e-5f, .act = o.act, .gated_mlp = true,
                            .bias = false, .norm1_name = "attention_norm", .norm2_name = "ffn_norm",
                            .attn_name = "attention", .mlp_name = "feed_forward", .o_name = "o_proj"};
  for (int64_t i = 0; i < o.layers; ++i) {
    layers.push_back(std::make_unique<nn::VisionBlock>(bo));
    register_module("layers." + std::to_string(i), *layers.back());
  }
}

PixtralTower::PixtralTower(const PixtralOptions& o) : o_(o) {
  patch_conv_ = std::make_unique<nn::PatchEmbedding>(o.channels, o.hidden, std::vector<int64_t>{o.patch, o.patch}, false);
  ln_pre_ = std::make_unique<nn::RMSNorm>(o.hidden, 1e-5f);
  transformer_ = std::make_unique<Transformer>(o);
  register_module("patch_conv", *patch_conv_);
  register_module("ln_pre", *ln_pre_);
  register_module("transformer", *transformer_);
}

std::vector<Tensor> PixtralTower::hidden_states(const Tensor& pixel_values,
                                                const std::vector<std::pair<int64_t, int64_t>>& sizes,
                                                int64_t up_to) const {
  if (up_to < 0 || up_to > o_.layers) {
    throw InvalidArgument("pixtral tower: layer " + std::to_string(up_to) + " of " + std::to_string(o_.layers));
  }
  // inv_freq over the head's even dims, float32 as transformers computes it; rows take the
  // even-indexed frequencies, columns the odd-indexed ones.
  const int64_t D = o_.hidden / o_.heads;
  std::vector<float> inv(static_cast<size_t>(D / 2));
  for (int64_t k = 0; k < D / 2; ++k) {
    inv[static_cast<size_t>(k)] =
        1.0f / std::pow(static_cast<float>(o_.theta), static_cast<float>(2 * k) / static_cast<float>(D));
  }
  std::vector<Tensor> embeds;
  std::vector<float> angles;
  nn::AttentionContext ctx;
  const Tensor pixels = pixel_values.to(Dtype::f32);
  for (size_t i = 0; i < sizes.size(); ++i) {
    const auto [h, w] = sizes[i];
    const auto b = static_cast<int64_t>(i);
    Tensor image = pixels.slice(0, b, b + 1).slice(2, 0, h).slice(3, 0, w).contiguous();
    embeds.push_back(patch_conv_->forward_images(image));  // [1, gh * gw, hidden]
    for (int64_t r = 0; r < h / o_.patch; ++r) {
      for (int64_t c = 0; c < w / o_.patch; ++c) {
        for (int64_t k = 0; k < D / 2; k += 2) angles.push_back(static_cast<float>(r) * inv[static_cast<size_t>(k)]);
        for (int64_t k = 1; k < D / 2; k += 2) angles.push_back(static_cast<float>(c) * inv[static_cast<size_t>(k)]);
        ctx.blocks.push_back(b);
      }
    }
  }
  const int64_t n = static_cast<int64_t>(ctx.blocks.size());
  std::tie(ctx.cos, ctx.sin) = nn::rotary_tables(angles, n);
  Tensor x = ln_pre_->forward(embeds.size() == 1 ? embeds[0] : ops::concat(embeds, 1));  // [1, n, hidden]
  std::vector<Tensor> out{x};
  for (int64_t l = 0; l < up_to; ++l) out.push_back(transformer_->layers[static_cast<size_t>(l)]->forward(out.back(), &ctx));
  for (Tensor& t : out) t = t.select(0, 0);
  return out;
}

std::vector<int32_t> pixtral_image_prompt(int64_t rows, int64_t cols, int32_t image_token,
                                          const tokenizer::Tokenizer& tok, const std::string& model_type) {
  const int32_t brk = required_token(tok, "[IMG_BREAK]", model_type);
  const int32_t end = required_token(tok, "[IMG_END]", model_type);
  std::vector<int32_t> out;
  for (int64_t r = 0; r < rows; ++r) {
    out.insert(out.end(), static_cast<size_t>(cols), image_token);
    out.push_back(r + 1 == rows ? end : brk);
  }
  return out;
}

}  // namespace lmx::models::vlm
