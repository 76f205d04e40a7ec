// Gemma 3 with images: a SigLIP tower, its patches average-pooled to mm_tokens_per_image,
// RMS-normed (1 + w) and projected; the tokens of one image attend to each other both
// ways (transformers 5's blockwise mask over causal and sliding-window attention).
#include <cmath>
#include <string>

#include "lmx/base/error.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/ops/reduce.h"
#include "lmx/models/llm/common.h"
#include "lmx/models/vlm/vision_language_model.h"
#include "lmx/models/vlm/vit_tower.h"
#include "lmx/models/vlm/vlm_families.h"

namespace lmx::models::vlm {
namespace {

// transformers' Gemma3ForConditionalGeneration applies no final_logit_softcapping (its text
// model alone does); released Gemma 3 configs leave it null either way.
std::unique_ptr<TransformerLM> gemma3_text_model(const ConfigReader& text) {
  TransformerSpec spec = llm::gemma3_text(text);
  spec.final_softcap = 0.0f;
  return std::make_unique<TransformerLM>(std::move(spec));
}

struct Projector : nn::Module {
  Projector(int64_t vision, int64_t text, float eps) : norm(vision, eps, /*unit_offset=*/true) {
    register_parameter("mm_input_projection_weight", weight, {vision, text});
    register_module("mm_soft_emb_norm", norm);
  }
  Tensor weight;  // [vision hidden, text hidden]
  nn::RMSNorm norm;
};

class Gemma3 : public VisionLanguageModel {
 public:
  Gemma3(const ConfigReader& raw, const ConfigReader& text)
      : VisionLanguageModel("gemma3", gemma3_text_model(text), raw.get_int("image_token_index", 262144)),
        boi_(raw.get_int("boi_token_index", 255999)),
        eoi_(raw.get_int("eoi_token_index", 256000)) {
    auto vision = raw.object("vision_config");
    if (!vision) raw.fail("vision_config", "is missing");
    tower_ = std::make_unique<VitTower>(read_vit_tower(*vision, false));
    const int64_t tokens = raw.get_int("mm_tokens_per_image", 256);
    side_ = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(tokens))));
    const int64_t patches = tower_->options().image_size / tower_->options().patch;
    if (side_ <= 0 || side_ * side_ != tokens || patches % side_ != 0) {
      raw.fail("mm_tokens_per_image", "must be a square whose side divides the patches per side (" +
                                          std::to_string(patches) + ")");
    }
    projector_ = std::make_unique<Projector>(tower_->options().hidden, text_->spec().hidden, tower_->options().norm_eps);
    register_module("vision_tower", *tower_);
    register_module("multi_modal_projector", *projector_);
  }

  std::vector<int64_t> image_token_counts(const ImageInputs& images) const override {
    return std::vector<int64_t>(static_cast<size_t>(images.pixel_values.dim(0)), side_ * side_);
  }

  int64_t prompt_image_marker() const override { return boi_; }

  // Gemma3Processor's "\n\n<start_of_image>" + placeholders + "<end_of_image>\n\n".
  std::vector<int32_t> image_prompt(const ImageInputs&, size_t, const tokenizer::Tokenizer& tok) const override {
    const int64_t count = side_ * side_;
    std::vector<int32_t> out = tok.encode("\n\n", false);
    out.push_back(static_cast<int32_t>(boi_));
    out.insert(out.end(), static_cast<size_t>(count), static_cast<int32_t>(image_token_));
    out.push_back(static_cast<int32_t>(eoi_));
    for (int32_t id : tok.encode("\n\n", false)) out.push_back(id);
    return out;
  }

  bool image_calls_need_whole_prompt() const override { return true; }

  Tensor image_features(const ImageInputs& images) const override {
    Tensor x = tower_->last_hidden_state(images.pixel_values.to(Dtype::f32));  // [N, patches, d]
    const int64_t N = x.dim(0), d = x.dim(2);
    const int64_t patches = tower_->options().image_size / tower_->options().patch, k = patches / side_;
    // Average pooling with a k x k kernel and stride over the patch grid (row-major).
    x = x.reshape({N, side_, k, side_, k, d});
    x = ops::mean(ops::mean(x, 4), 2);  // [N, side, side, d]
    x = projector_->norm.forward(x.reshape({N * side_ * side_, d}));
    return ops::matmul(x, projector_->weight.to(Dtype::f32));
  }

 protected:
  // Each run of placeholders is one image: a block its tokens see both ways.
  bool attention_context(const Tensor& tokens, const nn::KVCacheList*, const ImageInputs& images,
                         const std::vector<int64_t>&, nn::AttentionContext& ctx) const override {
    if (images.empty()) return false;
    ctx.blocks.assign(static_cast<size_t>(tokens.dim(1)), -1);
    int64_t block = 0;
    for (const auto& [start, length] : placeholder_runs(tokens)) {
      for (int64_t i = start; i < start + length; ++i) ctx.blocks[static_cast<size_t>(i)] = block;
      ++block;
    }
    return true;
  }

 private:
  std::unique_ptr<VitTower> tower_;
  std::unique_ptr<Projector> projector_;
  int64_t side_ = 0;
  int64_t boi_, eoi_;
};

}  // namespace

std::unique_ptr<LanguageModel> gemma3(const ConfigReader& raw, const ConfigReader& text) {
  return std::make_unique<Gemma3>(raw, text);
}

}  // namespace lmx::models::vlm
