// The vision transformer of Qwen2-VL, Qwen2.5-VL and Qwen3-VL: patch embedding over
// temporal patches, pre-norm blocks with a 2-D rotary (height, width) over each image's
// patches, Qwen2.5-VL's windowed attention, Qwen3-VL's learned positions (bilinearly
// resampled to each grid) and DeepStack mergers, and the PatchMerger (norm, then an MLP
// over each spatial_merge_size^2 group of neighbouring patches). Checkpoint names as
// transformers' "visual" module: patch_embed.proj, pos_embed, blocks.N.{norm1, attn.qkv,
// attn.proj, norm2, mlp}, merger.{ln_q, mlp.0, mlp.2} (Qwen3-VL: merger.{norm,
// linear_fc1, linear_fc2}, deepstack_merger_list.N).
#pragma once

#include <memory>
#include <vector>

#include "lmx/models/config_reader.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/norm.h"
#include "lmx/nn/patch_embed.h"
#include "lmx/nn/vision_block.h"

namespace lmx::models::vlm {

enum class QwenVision { qwen2, qwen2_5, qwen3 };

struct Qwen2VisionOptions {
  int64_t embed_dim = 0, heads = 0, intermediate = 0, depth = 0, out_hidden = 0;
  int64_t patch = 14, temporal_patch = 2, merge = 2, channels = 3;
  double theta = 10000.0;
  nn::Activation act = nn::Activation::quick_gelu;
  QwenVision kind = QwenVision::qwen2;  // qwen2_5: RMSNorms, gated MLPs, windowed attention
  int64_t window = 0;    // Qwen2.5-VL window_size in pixels
  std::vector<int64_t> full_attention_blocks;  // Qwen2.5-VL fullatt_block_indexes
  int64_t positions = 0;                       // Qwen3-VL num_position_embeddings (a square)
  std::vector<int64_t> deepstack;              // Qwen3-VL deepstack_visual_indexes
};

Qwen2VisionOptions read_qwen2_vision(const ConfigReader& vision, QwenVision kind);

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
  // -> the blocks' output [patches, embed_dim] (transformers' last_hidden_state), on the
  // tower's device: pixel_values (from the host's processor) and the tables made on the
  // host (rotation, blocks) are moved there explicitly, once per call.
  Tensor encode(const Tensor& pixel_values, const std::vector<GridThw>& grids) const;
  // encode() through the merger: [patches / merge^2, out_hidden]; then Qwen3-VL's DeepStack
  // features (the outputs of its deepstack blocks through their mergers), same shape.
  std::vector<Tensor> forward(const Tensor& pixel_values, const std::vector<GridThw>& grids) const;
  int64_t merge() const { return o_.merge; }
  // Where the weights live (Module::to moved them all together).
  Device device() const;

 private:
  struct PatchEmbed : nn::Module {
    explicit PatchEmbed(const Qwen2VisionOptions& o);
    std::unique_ptr<nn::PatchEmbedding> proj;
  };
  struct Merger : nn::Module {
    // post_shuffle: the norm over the merged width (Qwen3-VL's DeepStack mergers).
    Merger(const Qwen2VisionOptions& o, bool post_shuffle);
    Tensor forward(const Tensor& x) const;  // [patches, embed] -> [patches / merge^2, out_hidden]
    std::unique_ptr<nn::Norm> ln_q;
    std::unique_ptr<nn::Linear> fc1, fc2;
    int64_t width = 0;
    bool post_shuffle = false;
  };
  // The rotation of every patch (on `device`) and the blocks of full and windowed attention;
  // no blocks for full attention over a single frame (every patch sees every patch).
  void contexts(const std::vector<GridThw>& grids, Device device, nn::AttentionContext& full,
                nn::AttentionContext& windowed) const;
  // Qwen3-VL: the learned positions resampled to each grid, in the patches' order.
  Tensor learned_positions(const std::vector<GridThw>& grids) const;
  // encode(), keeping the outputs of the DeepStack blocks.
  Tensor run_blocks(const Tensor& pixel_values, const std::vector<GridThw>& grids, std::vector<Tensor>* kept) const;

  Qwen2VisionOptions o_;
  std::unique_ptr<PatchEmbed> patch_embed_;
  std::unique_ptr<nn::Embedding> pos_embed_;
  std::vector<std::unique_ptr<nn::VisionBlock>> blocks_;
  std::unique_ptr<Merger> merger_;
  std::vector<std::unique_ptr<Merger>> deepstack_;
};

}  // namespace lmx::models::vlm
