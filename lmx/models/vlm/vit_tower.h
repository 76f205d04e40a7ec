// The CLIP and SigLIP vision transformers: patch embedding (+ CLIP's class token) plus
// learned positions, CLIP's pre-layernorm, pre-norm encoder layers, post-layernorm.
// Checkpoint names as transformers' CLIPVisionTransformer / SiglipVisionTransformer
// ("embeddings.patch_embedding", "encoder.layers.N", "post_layernorm").
#pragma once

#include <memory>
#include <vector>

#include "lmx/models/config_reader.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/norm.h"
#include "lmx/nn/patch_embed.h"
#include "lmx/nn/vision_block.h"

namespace lmx::models::vlm {

struct VitTowerOptions {
  int64_t hidden = 0, heads = 0, intermediate = 0, layers = 0;
  int64_t image_size = 0, patch = 0, channels = 3;
  float norm_eps = 1e-5f;
  nn::Activation act = nn::Activation::quick_gelu;
  bool clip = true;  // CLIP: class token, pre_layrnorm, no patch bias; SigLIP: none of these
};

// Reads a vision_config (clip_vision_model or siglip_vision_model).
VitTowerOptions read_vit_tower(const ConfigReader& vision, bool clip);

class VitTower : public nn::Module {
 public:
  explicit VitTower(const VitTowerOptions& o);
  // pixel_values [images, channels, image_size, image_size] -> the hidden states
  // [images, tokens, hidden] of layers 0 .. up_to (0: the embeddings after CLIP's
  // pre-layernorm; n: after layer n), as transformers' output_hidden_states.
  std::vector<Tensor> hidden_states(const Tensor& pixel_values, int64_t up_to) const;
  // SigLIP's last_hidden_state: every layer, then post_layernorm.
  Tensor last_hidden_state(const Tensor& pixel_values) const;
  int64_t num_layers() const { return o_.layers; }
  int64_t num_patches() const { return (o_.image_size / o_.patch) * (o_.image_size / o_.patch); }
  const VitTowerOptions& options() const { return o_; }

 private:
  struct Embeddings : nn::Module {
    explicit Embeddings(const VitTowerOptions& o);
    std::unique_ptr<nn::PatchEmbedding> patch;
    std::unique_ptr<nn::Embedding> positions;
    Tensor class_embedding;  // [hidden] (CLIP)
  };
  struct Encoder : nn::Module {
    explicit Encoder(const VitTowerOptions& o);
    std::vector<std::unique_ptr<nn::VisionBlock>> layers;
  };
  Tensor embed(const Tensor& pixel_values) const;

  VitTowerOptions o_;
  std::unique_ptr<Embeddings> embeddings_;
  std::unique_ptr<nn::LayerNorm> pre_norm_, post_norm_;
  std::unique_ptr<Encoder> encoder_;
};

}  // namespace lmx::models::vlm
