// Qwen2-VL, Qwen2.5-VL and Qwen3-VL: the Qwen vision transformer (lmx/models/vlm/qwen2_vision.h)
// and a Qwen2 (Qwen3-VL: Qwen3) text model whose rotary takes three position ids per token
// (M-RoPE: temporal, height, width over the sections of rope_parameters.mrope_section;
// Qwen3-VL interleaves them: frequency f takes height when f % 3 == 1, width when
// f % 3 == 2, within their sections). Text tokens have three equal ids; an image's tokens
// count from the position after the text before it along its (t, h, w) grid of merged
// patches, and the text after it continues from the largest id + 1, so positions run
// behind token indices by rope_deltas, kept for the decoding steps that follow. Qwen3-VL's
// DeepStack features are added to the image tokens' outputs of the first text layers.
#include <algorithm>
#include <cstdio>
#include <numeric>
#include <string>

#include "lmx/base/error.h"
#include "lmx/models/llm/common.h"
#include "lmx/models/vlm/qwen2_vision.h"
#include "lmx/models/vlm/vision_language_model.h"
#include "lmx/models/vlm/vlm_families.h"
#include "lmx/nn/rope.h"

namespace lmx::models::vlm {
namespace {

std::vector<int64_t> read_mrope_section(const ConfigReader& text, int64_t half) {
  std::vector<int64_t> s;
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    if (auto r = text.object(key); r && r->has("mrope_section")) {
      s = r->get_ints("mrope_section");
      break;
    }
  }
  if (s.empty()) s = {16, 24, 24};
  if (s.size() != 3 || std::accumulate(s.begin(), s.end(), int64_t{0}) != half) {
    text.fail("rope_parameters", "mrope_section must be three sizes summing to head_dim / 2 (" +
                                     std::to_string(half) + ")");
  }
  return s;
}

const char* type_name(QwenVision kind, bool moe) {
  if (moe) return "qwen3_vl_moe";
  return kind == QwenVision::qwen2 ? "qwen2_vl" : kind == QwenVision::qwen2_5 ? "qwen2_5_vl" : "qwen3_vl";
}

// The text model: Qwen2 for Qwen2(.5)-VL, Qwen3 for Qwen3-VL, Qwen3-MoE for Qwen3-VL-MoE
// (its experts fused as gate_up_proj / down_proj, split by the MoE loader).
TransformerSpec text_spec(const ConfigReader& text, QwenVision kind, bool moe) {
  if (moe) return llm::qwen3_moe(text);
  return kind == QwenVision::qwen3 ? llm::qwen3(text) : llm::qwen2(text);
}

class Qwen2VL : public VisionLanguageModel {
 public:
  Qwen2VL(const ConfigReader& raw, const ConfigReader& text, QwenVision kind, bool moe = false)
      : VisionLanguageModel(type_name(kind, moe), std::make_unique<TransformerLM>(text_spec(text, kind, moe)),
                            raw.get_int("image_token_id", 151655)),
        interleaved_(kind == QwenVision::qwen3), kind_(kind) {
    video_token_ = raw.get_int("video_token_id", 151656);
    vision_start_ = raw.get_int("vision_start_token_id", 151652);
    vision_end_ = raw.get_int("vision_end_token_id", 151653);
    auto vision = raw.object("vision_config");
    if (!vision) raw.fail("vision_config", "is missing");
    if (kind == QwenVision::qwen2_5) tokens_per_second_ = static_cast<float>(vision->get_double("tokens_per_second", 4.0));
    tower_ = std::make_unique<Qwen2VisionTower>(read_qwen2_vision(*vision, kind));
    register_module("vision_tower", *tower_);
    const nn::RopeConfig& rope = text_->spec().ropes.at(0);
    if (rope.type != "default" || rope.dim != text_->spec().layers.at(0).attention.head_dim) {
      text.fail("rope_parameters", "M-RoPE needs the default rope over the whole head_dim");
    }
    sections_ = read_mrope_section(text, rope.dim / 2);
    inv_freq_ = nn::RotaryEmbedding(rope).inv_freq(1);
  }

  std::vector<int64_t> image_token_counts(const ImageInputs& images) const override {
    return images.has_images() ? merged_token_counts(images.image_grid_thw, images.pixel_values)
                               : std::vector<int64_t>{};
  }

  std::vector<int64_t> video_token_counts(const ImageInputs& inputs) const override {
    return inputs.has_videos() ? merged_token_counts(inputs.video_grid_thw, inputs.pixel_values_videos)
                               : std::vector<int64_t>{};
  }

  // Placeholders per image or video: its (t, h, w) patches after the merge.
  std::vector<int64_t> merged_token_counts(const Tensor& grid_thw, const Tensor& pixels) const {
    std::vector<int64_t> out;
    const int64_t merge = tower_->merge();
    for (const GridThw& g : read_grids(grid_thw, pixels, merge)) out.push_back(g.t * g.h * g.w / (merge * merge));
    return out;
  }

  // Qwen3-VL: before each frame group "<t seconds>" (its timestamp, one decimal), then the
  // group's placeholders between <|vision_start|> and <|vision_end|>, as Qwen3VLProcessor.
  std::vector<int32_t> video_prompt(const ImageInputs& inputs, size_t index,
                                    const tokenizer::Tokenizer& tok) const override {
    if (kind_ != QwenVision::qwen3) return VisionLanguageModel::video_prompt(inputs, index, tok);
    const GridThw g =
        read_grids(inputs.video_grid_thw, inputs.pixel_values_videos, tower_->merge()).at(index);
    const int64_t per_group = g.h * g.w / (tower_->merge() * tower_->merge());
    if (index >= inputs.video_timestamps.size() || static_cast<int64_t>(inputs.video_timestamps[index].size()) != g.t) {
      throw InvalidArgument(model_type_ + ": video " + std::to_string(index) + " needs a timestamp per temporal patch (" +
                            std::to_string(g.t) + ")");
    }
    std::vector<int32_t> out;
    for (int64_t t = 0; t < g.t; ++t) {
      char stamp[64];
      std::snprintf(stamp, sizeof(stamp), "<%.1f seconds>", inputs.video_timestamps[index][static_cast<size_t>(t)]);
      const std::vector<int32_t> text = tok.encode(stamp, false);
      out.insert(out.end(), text.begin(), text.end());
      out.push_back(static_cast<int32_t>(vision_start_));
      out.insert(out.end(), static_cast<size_t>(per_group), static_cast<int32_t>(video_token_));
      out.push_back(static_cast<int32_t>(vision_end_));
    }
    return out;
  }

  std::pair<int64_t, int64_t> video_marker_wrapping() const override {
    if (kind_ != QwenVision::qwen3) return {-1, -1};
    return {vision_start_, vision_end_};
  }

  std::vector<Tensor> video_feature_stack(const ImageInputs& inputs) const override {
    return tower_->forward(inputs.pixel_values_videos,
                           read_grids(inputs.video_grid_thw, inputs.pixel_values_videos, tower_->merge()));
  }

  Tensor image_features(const ImageInputs& images) const override { return image_feature_stack(images).at(0); }

  std::vector<Tensor> image_feature_stack(const ImageInputs& images) const override {
    return tower_->forward(images.pixel_values, read_grids(images.image_grid_thw, images.pixel_values, tower_->merge()));
  }

 protected:
  bool attention_context(const Tensor& tokens, const nn::KVCacheList* caches, const ImageInputs& images,
                         const std::vector<int64_t>& shifts, nn::AttentionContext& ctx) const override;
  int64_t position_shift() const override { return rope_delta_; }

 private:
  // The three position ids ([3][L]) of a call's tokens; updates rope_delta_.
  std::vector<std::vector<int64_t>> positions(const Tensor& tokens, int64_t offset, const ImageInputs& images) const;

  std::unique_ptr<Qwen2VisionTower> tower_;
  std::vector<int64_t> sections_;
  std::vector<float> inv_freq_;
  bool interleaved_ = false;
  QwenVision kind_;
  int64_t vision_start_ = 0, vision_end_ = 0;
  float tokens_per_second_ = 0;     // Qwen2.5-VL: temporal position ids per second of video
  mutable int64_t rope_delta_ = 0;  // position id - token index after the last call
};

std::vector<std::vector<int64_t>> Qwen2VL::positions(const Tensor& tokens, int64_t offset,
                                                     const ImageInputs& images) const {
  const int64_t L = tokens.dim(1), m = tower_->merge();
  // The visual blocks in prompt order: each a grid and the temporal position of frame group tt.
  struct Block {
    GridThw grid;
    double seconds = 0;  // Qwen2.5-VL videos: seconds per temporal patch (0: t ids step by 1)
    bool video = false;
  };
  std::vector<Block> image_blocks, video_blocks;
  if (images.has_images()) {
    for (const GridThw& g : read_grids(images.image_grid_thw, images.pixel_values, m)) image_blocks.push_back({g});
  }
  if (images.has_videos()) {
    const auto grids = read_grids(images.video_grid_thw, images.pixel_values_videos, m);
    if (kind_ == QwenVision::qwen2_5 && images.second_per_grid_ts.size() != grids.size()) {
      throw InvalidArgument(model_type_ + ": second_per_grid_ts has " + std::to_string(images.second_per_grid_ts.size()) +
                            " values for " + std::to_string(grids.size()) + " videos");
    }
    for (size_t v = 0; v < grids.size(); ++v) {
      if (kind_ == QwenVision::qwen3) {
        // Qwen3-VL: each frame group is its own block (timestamps text between them).
        for (int64_t t = 0; t < grids[v].t; ++t) video_blocks.push_back({{1, grids[v].h, grids[v].w}, 0, true});
      } else {
        video_blocks.push_back({grids[v], kind_ == QwenVision::qwen2_5 ? images.second_per_grid_ts[v] : 0, true});
      }
    }
  }
  std::vector<std::pair<int64_t, int64_t>> runs = placeholder_runs(tokens);
  for (const auto& r : placeholder_runs(tokens, video_token_)) runs.push_back(r);
  std::sort(runs.begin(), runs.end());
  const std::vector<float> ids = tokens.to(Dtype::f32).to_float_vector();
  std::vector<std::vector<int64_t>> pos(3, std::vector<int64_t>(static_cast<size_t>(L)));
  int64_t next = offset + rope_delta_, i = 0;
  size_t image = 0, video = 0;
  for (const auto& [start, length] : runs) {
    for (; i < start; ++i, ++next) {
      for (auto& p : pos) p[static_cast<size_t>(i)] = next;
    }
    const bool is_video = ids[static_cast<size_t>(start)] == static_cast<float>(video_token_);
    std::vector<Block>& blocks = is_video ? video_blocks : image_blocks;
    size_t& used = is_video ? video : image;
    const char* what = is_video ? "video" : "image";
    // A run may hold several blocks back to back: each takes its grid's token count.
    for (int64_t end = start + length; i < end;) {
      if (used >= blocks.size()) {
        throw InvalidArgument(model_type_ + ": more " + what + " placeholders than " + what + "_grid_thw rows");
      }
      const Block b = blocks[used++];
      const GridThw g = b.grid;
      const int64_t gh = g.h / m, gw = g.w / m, n = g.t * gh * gw;
      if (i + n > end) {
        throw InvalidArgument(model_type_ + ": " + what + " block " + std::to_string(used - 1) + " needs " +
                              std::to_string(n) + " consecutive placeholders, the prompt has " + std::to_string(end - i));
      }
      // transformers 5: temporal ids step by tokens_per_second x int(second_per_grid_t)
      // (Qwen2.5-VL videos; 1 otherwise), and the text after a block continues from its
      // first position + max(merged height, merged width), whatever its length in time.
      const int64_t interval =
          b.seconds > 0 ? static_cast<int64_t>(tokens_per_second_) * static_cast<int64_t>(b.seconds) : 1;
      for (int64_t k = 0; k < n; ++i, ++k) {
        pos[0][static_cast<size_t>(i)] = next + k / (gh * gw) * interval;
        pos[1][static_cast<size_t>(i)] = next + k / gw % gh;
        pos[2][static_cast<size_t>(i)] = next + k % gw;
      }
      next += std::max(gh, gw);
    }
  }
  for (; i < L; ++i, ++next) {
    for (auto& p : pos) p[static_cast<size_t>(i)] = next;
  }
  rope_delta_ = next - (offset + L);
  return pos;
}

bool Qwen2VL::attention_context(const Tensor& tokens, const nn::KVCacheList* caches, const ImageInputs& images,
                                const std::vector<int64_t>& shifts, nn::AttentionContext& ctx) const {
  const int64_t offset = cache_offset(caches);
  const int64_t B = tokens.dim(0), L = tokens.dim(1), half = static_cast<int64_t>(inv_freq_.size());
  if (!shifts.empty()) {
    if (static_cast<int64_t>(shifts.size()) != B) {
      throw InvalidArgument(model_type_ + ": " + std::to_string(shifts.size()) + " position shifts for a batch of " +
                            std::to_string(B));
    }
    rope_delta_ = shifts[0];
    if (images.empty() && B > 1) {
      // Text tokens of several rows: the three position ids are equal, row b's at its
      // cache positions (less its left padding) plus its shift.
      if (std::all_of(shifts.begin(), shifts.end(), [](int64_t v) { return v == 0; })) return false;
      std::vector<int64_t> pad = caches && !caches->empty() && (*caches)[0] ? (*caches)[0]->left_padding()
                                                                            : std::vector<int64_t>{};
      pad.resize(static_cast<size_t>(B), 0);
      std::vector<float> angles(static_cast<size_t>(B * L * half));
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t t = 0; t < L; ++t) {
          const auto p = static_cast<float>(offset - pad[static_cast<size_t>(b)] + shifts[static_cast<size_t>(b)] + t);
          for (int64_t f = 0; f < half; ++f)
            angles[static_cast<size_t>((b * L + t) * half + f)] = p * inv_freq_[static_cast<size_t>(f)];
        }
      }
      auto [cos, sin] = nn::rotary_tables(angles, B * L);
      ctx.cos = cos.reshape({B, 1, L, 2 * half}).to(tower_->device());
      ctx.sin = sin.reshape({B, 1, L, 2 * half}).to(tower_->device());
      return true;
    }
  } else if (offset == 0) {
    rope_delta_ = 0;
  }
  if (images.empty() && rope_delta_ == 0) return false;  // three equal ids: the plain rope
  if (B != 1) throw InvalidArgument(model_type_ + ": image positions need a batch of one sequence");
  const int64_t pad = caches && !caches->empty() && (*caches)[0] && !(*caches)[0]->left_padding().empty()
                          ? (*caches)[0]->left_padding()[0]
                          : 0;
  const auto pos = positions(tokens, offset - pad, images);
  std::vector<float> angles(static_cast<size_t>(L * half));
  // The position axis of each frequency.
  std::vector<size_t> axis(static_cast<size_t>(half), 0);
  for (int64_t f = 0, s = 0, j = 0; f < half; ++f, ++j) {
    if (interleaved_) {
      const int64_t a = f % 3;
      axis[static_cast<size_t>(f)] = a > 0 && f < 3 * sections_[static_cast<size_t>(a)] ? static_cast<size_t>(a) : 0;
      continue;
    }
    for (; j >= sections_[static_cast<size_t>(s)]; j = 0) ++s;
    axis[static_cast<size_t>(f)] = static_cast<size_t>(s);
  }
  for (int64_t t = 0; t < L; ++t) {
    for (int64_t f = 0; f < half; ++f) {
      angles[static_cast<size_t>(t * half + f)] =
          static_cast<float>(pos[axis[static_cast<size_t>(f)]][static_cast<size_t>(t)]) * inv_freq_[static_cast<size_t>(f)];
    }
  }
  std::tie(ctx.cos, ctx.sin) = nn::rotary_tables(angles, L);
  // The tables are made on the host; the text model's layers run where the weights are.
  ctx.cos = ctx.cos.to(tower_->device());
  ctx.sin = ctx.sin.to(tower_->device());
  return true;
}

}  // namespace

std::unique_ptr<LanguageModel> qwen2_vl(const ConfigReader& raw, const ConfigReader& text) {
  return std::make_unique<Qwen2VL>(raw, text, QwenVision::qwen2);
}

std::unique_ptr<LanguageModel> qwen2_5_vl(const ConfigReader& raw, const ConfigReader& text) {
  return std::make_unique<Qwen2VL>(raw, text, QwenVision::qwen2_5);
}

std::unique_ptr<LanguageModel> qwen3_vl(const ConfigReader& raw, const ConfigReader& text) {
  return std::make_unique<Qwen2VL>(raw, text, QwenVision::qwen3);
}

std::unique_ptr<LanguageModel> qwen3_vl_moe(const ConfigReader& raw, const ConfigReader& text) {
  return std::make_unique<Qwen2VL>(raw, text, QwenVision::qwen3, true);
}

}  // namespace lmx::models::vlm
