// The Pixtral vision transformer (Mistral 3, Pixtral-12B): images of any size (multiples of
// the patch) embedded by a bias-free patch convolution and RMS-normed (ln_pre), all
// images' patches as one sequence in which each image attends only to itself, a 2-D
// rotary over (row, column) of each patch, pre-norm blocks with RMSNorms and gated MLPs.
// Checkpoint names as transformers' PixtralVisionModel: patch_conv, ln_pre,
// transformer.layers.N.{attention_norm, attention.{q,k,v,o}_proj, ffn_norm,
// feed_forward.{gate,up,down}_proj}.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lmx/models/config_reader.h"
#include "lmx/tokenizer/tokenizer.h"
#include "lmx/nn/norm.h"
#include "lmx/nn/patch_embed.h"
#include "lmx/nn/vision_block.h"

namespace lmx::models::vlm {

struct PixtralOptions {
  int64_t hidden = 1024, heads = 16, intermediate = 4096, layers = 24, patch = 16, channels = 3;
  double theta = 10000.0;
  nn::Activation act = nn::Activation::silu;
};

PixtralOptions read_pixtral(const ConfigReader& vision);

class PixtralTower : public nn::Module {
 public:
  explicit PixtralTower(const PixtralOptions& o);
  // pixel_values [images, channels, H, W] (padded to the largest), sizes: each image's
  // (height, width) in pixels -> hidden states [patches of all images, hidden] of layers
  // 0 .. up_to (0: after ln_pre), as transformers' output_hidden_states.
  std::vector<Tensor> hidden_states(const Tensor& pixel_values, const std::vector<std::pair<int64_t, int64_t>>& sizes,
                                    int64_t up_to) const;
  int64_t num_layers() const { return o_.layers; }
  const PixtralOptions& options() const { return o_; }

 private:
  struct Transformer : nn::Module {
    explicit Transformer(const PixtralOptions& o);
    std::vector<std::unique_ptr<nn::VisionBlock>> layers;
  };
  PixtralOptions o_;
  std::unique_ptr<nn::PatchEmbedding> patch_conv_;
  std::unique_ptr<nn::RMSNorm> ln_pre_;
  std::unique_ptr<Transformer> transformer_;
};

// Image sizes (height, width) from the processor's image_sizes (i64 [images, 2]), checked
// against pixel_values [images, channels, H, W] and the patch.
std::vector<std::pair<int64_t, int64_t>> read_image_sizes(const Tensor& image_sizes, const Tensor& pixel_values,
                                                          int64_t patch);

// An image's prompt as PixtralProcessor writes it (Mistral 3, LLaVA with a Pixtral tower):
// `rows` rows of `cols` image tokens, each row closed by [IMG_BREAK], the last by [IMG_END].
std::vector<int32_t> pixtral_image_prompt(int64_t rows, int64_t cols, int32_t image_token,
                                          const tokenizer::Tokenizer& tok, const std::string& model_type);

}  // namespace lmx::models::vlm
