#include "lmx/models/vlm/qwen2_vision.h"

#include <cmath>
#include <string>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/reduce.h"
#include "lmx/nn/rope.h"

namespace lmx::models::vlm {

Qwen2VisionOptions read_qwen2_vision(const ConfigReader& v, QwenVision kind) {
  Qwen2VisionOptions o;
  o.kind = kind;
  o.depth = v.get_int("depth", 32);
  o.heads = v.get_int("num_heads", 16);
  o.patch = v.get_int("patch_size", 14);
  o.temporal_patch = v.get_int("temporal_patch_size", 2);
  o.merge = v.get_int("spatial_merge_size", 2);
  o.channels = v.get_int("in_channels", 3);
  if (kind == QwenVision::qwen2) {
    o.embed_dim = v.get_int("embed_dim", 1280);
    o.intermediate = o.embed_dim * v.get_int("mlp_ratio", 4);
    o.out_hidden = v.get_int("hidden_size", 3584);
    o.act = nn::parse_activation(v.get_string("hidden_act", "quick_gelu"));
  } else {
    const bool q3 = kind == QwenVision::qwen3;
    o.embed_dim = v.get_int("hidden_size", q3 ? 1152 : 3584);
    o.intermediate = v.get_int("intermediate_size", q3 ? 4304 : 3420);
    o.out_hidden = v.get_int("out_hidden_size", 3584);
    o.act = nn::parse_activation(v.get_string("hidden_act", q3 ? "gelu_pytorch_tanh" : "silu"));
  }
  if (kind == QwenVision::qwen2_5) {
    o.window = v.get_int("window_size", 112);
    o.full_attention_blocks = v.has("fullatt_block_indexes") ? v.get_ints("fullatt_block_indexes")
                                                              : std::vector<int64_t>{7, 15, 23, 31};
    if (o.window <= 0 || o.window % (o.merge * o.patch) != 0) {
      v.fail("window_size", "must be a positive multiple of spatial_merge_size * patch_size");
    }
  }
  if (kind == QwenVision::qwen3) {
    o.positions = v.get_int("num_position_embeddings", 2304);
    const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(o.positions))));
    if (side < 1 || side * side != o.positions) v.fail("num_position_embeddings", "must be a square");
    o.deepstack = v.has("deepstack_visual_indexes") ? v.get_ints("deepstack_visual_indexes")
                                                    : std::vector<int64_t>{8, 16, 24};
    for (int64_t b : o.deepstack) {
      if (b < 0 || b >= o.depth) v.fail("deepstack_visual_indexes", "names a block past depth");
    }
  }
  if (auto rope = v.object("rope_parameters")) o.theta = rope->get_positive("rope_theta", 10000.0);
  if (o.heads <= 0 || o.embed_dim % o.heads != 0 || (o.embed_dim / o.heads) % 4 != 0) {
    v.fail("num_heads", "must divide the vision width into heads of a multiple of 4 dims");
  }
  if (o.merge <= 0 || o.patch <= 0 || o.temporal_patch <= 0) v.fail("spatial_merge_size", "must be positive");
  return o;
}

std::vector<GridThw> read_grids(const Tensor& grid_thw, const Tensor& pixel_values, int64_t merge) {
  if (!grid_thw.defined()) throw InvalidArgument("image_grid_thw is missing (the Qwen2-VL processor writes it)");
  if (grid_thw.ndim() != 2 || grid_thw.dim(1) != 3) {
    throw ShapeError("image_grid_thw must be [images, 3], got " + shape_str(grid_thw.shape()));
  }
  const std::vector<float> v = grid_thw.to(Dtype::f32).to_float_vector();
  std::vector<GridThw> out;
  int64_t patches = 0;
  for (int64_t i = 0; i < grid_thw.dim(0); ++i) {
    GridThw g{static_cast<int64_t>(v[3 * i]), static_cast<int64_t>(v[3 * i + 1]), static_cast<int64_t>(v[3 * i + 2])};
    if (g.t <= 0 || g.h <= 0 || g.w <= 0 || g.h % merge != 0 || g.w % merge != 0) {
      throw InvalidArgument("image_grid_thw row " + std::to_string(i) + " (" + std::to_string(g.t) + ", " +
                            std::to_string(g.h) + ", " + std::to_string(g.w) +
                            ") must be positive with height and width multiples of " + std::to_string(merge));
    }
    patches += g.t * g.h * g.w;
    out.push_back(g);
  }
  if (pixel_values.ndim() != 2 || pixel_values.dim(0) != patches) {
    throw ShapeError("pixel_values must be [" + std::to_string(patches) + ", patch values] for image_grid_thw, got " +
                     shape_str(pixel_values.shape()));
  }
  return out;
}

Qwen2VisionTower::PatchEmbed::PatchEmbed(const Qwen2VisionOptions& o) {
  proj = std::make_unique<nn::PatchEmbedding>(o.channels, o.embed_dim,
                                              std::vector<int64_t>{o.temporal_patch, o.patch, o.patch},
                                              o.kind == QwenVision::qwen3);
  register_module("proj", *proj);
}

Qwen2VisionTower::Merger::Merger(const Qwen2VisionOptions& o, bool post_shuffle)
    : width(o.embed_dim * o.merge * o.merge), post_shuffle(post_shuffle) {
  const bool q3 = o.kind == QwenVision::qwen3;
  ln_q = std::make_unique<nn::Norm>(o.kind == QwenVision::qwen2_5 ? nn::NormKind::rms : nn::NormKind::layer,
                                    post_shuffle ? width : o.embed_dim, 1e-6f);
  fc1 = std::make_unique<nn::Linear>(width, width, true);
  fc2 = std::make_unique<nn::Linear>(width, o.out_hidden, true);
  register_module(q3 ? "norm" : "ln_q", *ln_q);
  register_module(q3 ? "linear_fc1" : "mlp.0", *fc1);
  register_module(q3 ? "linear_fc2" : "mlp.2", *fc2);
}

Tensor Qwen2VisionTower::Merger::forward(const Tensor& x) const {
  Tensor h = post_shuffle ? ln_q->forward(x.reshape({x.dim(0) * x.dim(1) / width, width}))
                          : ln_q->forward(x).reshape({x.dim(0) * x.dim(1) / width, width});
  return fc2->forward(ops::gelu(fc1->forward(h)));
}

Qwen2VisionTower::Qwen2VisionTower(const Qwen2VisionOptions& o) : o_(o) {
  const bool q3 = o.kind == QwenVision::qwen3, q25 = o.kind == QwenVision::qwen2_5;
  patch_embed_ = std::make_unique<PatchEmbed>(o);
  register_module("patch_embed", *patch_embed_);
  if (q3) {
    pos_embed_ = std::make_unique<nn::Embedding>(o.positions, o.embed_dim);
    register_module("pos_embed", *pos_embed_);
  }
  nn::VisionBlockOptions bo{.hidden = o.embed_dim, .heads = o.heads, .intermediate = o.intermediate,
                            .norm = q25 ? nn::NormKind::rms : nn::NormKind::layer, .norm_eps = 1e-6f,
                            .act = o.act, .gated_mlp = q25, .norm1_name = "norm1", .norm2_name = "norm2",
                            .attn_name = "attn", .fused_qkv = true};
  if (q3) {
    bo.fc1_name = "linear_fc1";
    bo.fc2_name = "linear_fc2";
  }
  for (int64_t i = 0; i < o.depth; ++i) {
    blocks_.push_back(std::make_unique<nn::VisionBlock>(bo));
    register_module("blocks." + std::to_string(i), *blocks_.back());
  }
  merger_ = std::make_unique<Merger>(o, false);
  register_module("merger", *merger_);
  for (size_t i = 0; i < o.deepstack.size(); ++i) {
    deepstack_.push_back(std::make_unique<Merger>(o, true));
    register_module("deepstack_merger_list." + std::to_string(i), *deepstack_.back());
  }
}

Device Qwen2VisionTower::device() const { return merger_->fc1->bias().device(); }

void Qwen2VisionTower::contexts(const std::vector<GridThw>& grids, Device device, nn::AttentionContext& full,
                                nn::AttentionContext& windowed) const {
  const int64_t head_dim = o_.embed_dim / o_.heads, spatial = head_dim / 2, m = o_.merge;
  std::vector<float> inv(static_cast<size_t>(spatial / 2));
  for (int64_t i = 0; i < spatial / 2; ++i) {
    inv[i] = 1.0f / std::pow(static_cast<float>(o_.theta), static_cast<float>(2 * i) / static_cast<float>(spatial));
  }
  // Qwen2.5-VL: windows of `units` x `units` merged patches, tiled from the top left.
  const int64_t units = o_.window > 0 ? o_.window / (m * o_.patch) : 1;
  std::vector<float> angles;
  int64_t frame = 0, window_base = 0;
  for (const GridThw& g : grids) {
    for (int64_t t = 0; t < g.t; ++t, ++frame) {
      // The processor orders patches by merged unit (row-major), then within the unit.
      for (int64_t hb = 0; hb < g.h / m; ++hb) {
        for (int64_t wb = 0; wb < g.w / m; ++wb) {
          for (int64_t p = 0; p < m * m; ++p) {
            const float hpos = static_cast<float>(hb * m + p / m), wpos = static_cast<float>(wb * m + p % m);
            for (float f : inv) angles.push_back(hpos * f);
            for (float f : inv) angles.push_back(wpos * f);
            full.blocks.push_back(frame);
            windowed.blocks.push_back(window_base + (hb / units) * (g.w / m) + wb / units);
          }
        }
      }
      window_base += (g.h / m) * (g.w / m);
    }
  }
  const int64_t n = static_cast<int64_t>(full.blocks.size());
  std::tie(full.cos, full.sin) = nn::rotary_tables(angles, n);
  full.cos = full.cos.to(device);
  full.sin = full.sin.to(device);
  // One frame: the mask of its block would hide nothing (and cost an [n, n] mask per layer).
  if (frame == 1) full.blocks.clear();
  windowed.cos = full.cos;
  windowed.sin = full.sin;
}

namespace {

// torch.linspace(0, end, steps) in float32: from the start for the first half, from the
// end for the rest.
std::vector<float> linspace(float end, int64_t steps) {
  std::vector<float> v(static_cast<size_t>(steps), 0.0f);
  if (steps == 1) return v;
  const float step = end / static_cast<float>(steps - 1);
  for (int64_t i = 0; i < steps; ++i) {
    v[static_cast<size_t>(i)] = i < steps / 2 ? step * static_cast<float>(i)
                                              : end - step * static_cast<float>(steps - 1 - i);
  }
  return v;
}

}  // namespace

Tensor Qwen2VisionTower::learned_positions(const std::vector<GridThw>& grids) const {
  const auto n = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(o_.positions))));
  const int64_t m = o_.merge;
  std::vector<int32_t> idx;  // 4 corners per patch
  std::vector<float> wts;
  for (const GridThw& g : grids) {
    const std::vector<float> hs = linspace(static_cast<float>(n - 1), g.h), ws = linspace(static_cast<float>(n - 1), g.w);
    for (int64_t t = 0; t < g.t; ++t) {
      for (int64_t hb = 0; hb < g.h / m; ++hb) {
        for (int64_t wb = 0; wb < g.w / m; ++wb) {
          for (int64_t p = 0; p < m * m; ++p) {
            const float y = hs[static_cast<size_t>(hb * m + p / m)], x = ws[static_cast<size_t>(wb * m + p % m)];
            const auto y0 = static_cast<int32_t>(y), x0 = static_cast<int32_t>(x);
            const int32_t y1 = std::min<int32_t>(y0 + 1, static_cast<int32_t>(n - 1));
            const int32_t x1 = std::min<int32_t>(x0 + 1, static_cast<int32_t>(n - 1));
            const float dy = y - static_cast<float>(y0), dx = x - static_cast<float>(x0);
            const auto row0 = static_cast<int32_t>(y0 * n), row1 = static_cast<int32_t>(y1 * n);
            idx.insert(idx.end(), {row0 + x0, row0 + x1, row1 + x0, row1 + x1});
            wts.insert(wts.end(), {(1 - dy) * (1 - dx), (1 - dy) * dx, dy * (1 - dx), dy * dx});
          }
        }
      }
    }
  }
  const auto patches = static_cast<int64_t>(idx.size() / 4);
  Tensor rows = pos_embed_->forward(Tensor::from_vector(idx, {patches, 4}));  // [patches, 4, embed]
  return ops::sum(ops::mul(rows, Tensor::from_vector(wts, {patches, 4, 1}).to(rows.device())), 1);
}

Tensor Qwen2VisionTower::run_blocks(const Tensor& pixel_values, const std::vector<GridThw>& grids,
                                    std::vector<Tensor>* kept) const {
  const Device device = this->device();
  nn::AttentionContext full, windowed;
  contexts(grids, device, full, windowed);
  // The host's pixel values move to the weights' device here, the one copy of the call.
  Tensor x = patch_embed_->proj->forward_patches(pixel_values.to(Dtype::f32).to(device));  // [N, embed]
  if (pos_embed_) x = ops::add(x, learned_positions(grids));
  x = x.reshape({1, x.dim(0), x.dim(1)});
  for (size_t i = 0; i < blocks_.size(); ++i) {
    bool is_full = o_.kind != QwenVision::qwen2_5;
    for (int64_t b : o_.full_attention_blocks) is_full = is_full || b == static_cast<int64_t>(i);
    x = blocks_[i]->forward(x, is_full ? &full : &windowed);
    if (kept) {
      for (int64_t b : o_.deepstack) {
        if (b == static_cast<int64_t>(i)) kept->push_back(x.select(0, 0));
      }
    }
  }
  return x.select(0, 0);
}

Tensor Qwen2VisionTower::encode(const Tensor& pixel_values, const std::vector<GridThw>& grids) const {
  return run_blocks(pixel_values, grids, nullptr);
}

std::vector<Tensor> Qwen2VisionTower::forward(const Tensor& pixel_values, const std::vector<GridThw>& grids) const {
  std::vector<Tensor> kept;
  std::vector<Tensor> out{merger_->forward(run_blocks(pixel_values, grids, &kept))};
  // deepstack_visual_indexes in their listed order, each through its own merger.
  for (size_t i = 0; i < o_.deepstack.size(); ++i) {
    size_t slot = 0;  // kept holds the blocks in depth order
    for (int64_t b : o_.deepstack) slot += b < o_.deepstack[i] ? 1 : 0;
    out.push_back(deepstack_[i]->forward(kept.at(slot)));
  }
  return out;
}

}  // namespace lmx::models::vlm
