// The vision transformer of Qwen2-VL and Qwen2.5-VL: patch embedding over temporal
// patches, pre-norm blocks with a 2-D rotary (height, width) over each image's patches,
// Qwen2.5-VL's windowed attention, and the PatchMerger (norm, then an MLP over each
// spatial_merge_size^2 group of neighbouring patches). Checkpoint names as transformers'
// "visual" module: patch_embed.proj, blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp},
// merger.{ln_q, mlp.0, mlp.2}.
#pragma once

#include <memory>
#include <vector>

#include "lmx/models/config_reader.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/norm.h"
#include "lmx/nn/patch_embed.h"
#include "lmx/nn/vision_block.h"

namespace lmx::models::vlm {

struct Qwen2VisionOptions {
  int64_t embed_dim = 0, heads = 0, intermediate = 0, depth = 0, out_hidden = 0;
  int64_t patch = 14, temporal_patch = 2, merge = 2, channels = 3;
  double theta = 10000.0;
  nn::Activation act = nn::Activation::quick_gelu;
  bool qwen2_5 = false;  // RMSNorms, gated MLPs, windowed attention
  int64_t window = 0;    // Qwen2.5-VL window_size in pixels
  std::vector<int64_t> full_attention_blocks;  // Qwen2.5-VL fullatt_block_indexes
};

Qwen2VisionOptions read_qwen2_vision(const ConfigReader& vision, bool qwen2_5);

// One image's (or video's) patch grid: temporal, height and width patches.
struct GridThw {
  int64_t t = 0, h = 0, w = 0;
};
// image_grid_thw (i64 [images, 3]) as grids, checked against pixel_values' row count.
std::vector<GridThw> read_grids(const Tensor& image_grid_thw, const Tensor& pixel_values, int64_t merge);

class Qwen2VisionTower : public nn::Module {
 public:
  explicit Qwen2VisionTower(const Qwen2VisionOptions& o);
  // pixel_values [patches, channels * temporal_patch * patch^2] in the processor's order
  // -> the blocks' output [patches, embed_dim] (transformers' last_hidden_state).
  Tensor encode(const Tensor& pixel_values, const std::vector<GridThw>& grids) const;
  // encode() through the merger: [patches / merge^2, out_hidden].
  Tensor forward(const Tensor& pixel_values, const std::vector<GridThw>& grids) const;
  int64_t merge() const { return o_.merge; }

 private:
  struct PatchEmbed : nn::Module {
    explicit PatchEmbed(const Qwen2VisionOptions& o);
    std::unique_ptr<nn::PatchEmbedding> proj;
  };
  struct Merger : nn::Module {
    explicit Merger(const Qwen2VisionOptions& o);
    std::unique_ptr<nn::Norm> ln_q;
    std::unique_ptr<nn::Linear> fc1, fc2;
  };
  // The rotation of every patch and the blocks of full and windowed attention.
  void contexts(const std::vector<GridThw>& grids, nn::AttentionContext& full, nn::AttentionContext& windowed) const;

  Qwen2VisionOptions o_;
  std::unique_ptr<PatchEmbed> patch_embed_;
  std::vector<std::unique_ptr<nn::VisionBlock>> blocks_;
  std::unique_ptr<Merger> merger_;
};

}  // namespace lmx::models::vlm
