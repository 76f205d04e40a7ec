// PaliGemma (1 and 2): a SigLIP tower's last hidden state through one linear projection
// into a Gemma (or Gemma 2) text model. The prompt's prefix (the image tokens, <bos>, the
// text and "\n": the call that carries the images) attends both ways; what follows is
// causal. transformers counts positions from 1; RoPE sees only differences, so lmx's
// positions from 0 give the same attention.
#include <string>

#include "lmx/base/error.h"
#include "lmx/models/vlm/vision_language_model.h"
#include "lmx/models/vlm/vit_tower.h"
#include "lmx/models/vlm/vlm_families.h"

namespace lmx::models::vlm {
namespace {

struct Projector : nn::Module {
  Projector(int64_t in, int64_t out) : linear(in, out, true) { register_module("linear", linear); }
  nn::Linear linear;
};

class PaliGemma : public VisionLanguageModel {
 public:
  PaliGemma(const ConfigReader& raw, const ConfigReader& text)
      : VisionLanguageModel("paligemma", make_text_model(text),
                            raw.get_int("image_token_index", raw.get_int("image_token_id", 257152))) {
    auto vision = raw.object("vision_config");
    if (!vision) raw.fail("vision_config", "is missing");
    tower_ = std::make_unique<VitTower>(read_vit_tower(*vision, false));
    const int64_t hidden = text_->spec().hidden;
    const int64_t projection = raw.get_int("projection_dim", vision->get_int("projection_dim", hidden));
    if (projection != hidden) raw.fail("projection_dim", "must equal the text model's hidden_size");
    projector_ = std::make_unique<Projector>(tower_->options().hidden, hidden);
    register_module("vision_tower", *tower_);
    register_module("multi_modal_projector", *projector_);
  }

  std::vector<int64_t> image_token_counts(const ImageInputs& images) const override {
    return std::vector<int64_t>(static_cast<size_t>(images.pixel_values.dim(0)), tower_->num_patches());
  }

  bool image_calls_need_whole_prompt() const override { return true; }

  Tensor image_features(const ImageInputs& images) const override {
    Tensor x = projector_->linear.forward(tower_->last_hidden_state(images.pixel_values.to(Dtype::f32)));
    return x.reshape({x.dim(0) * x.dim(1), x.dim(2)});
  }

 protected:
  // The call with the images is the prefix: one block seen both ways.
  bool attention_context(const Tensor& tokens, const nn::KVCacheList*, const ImageInputs& images,
                         const std::vector<int64_t>&, nn::AttentionContext& ctx) const override {
    if (images.empty()) return false;
    ctx.blocks.assign(static_cast<size_t>(tokens.dim(1)), 0);
    return true;
  }

 private:
  std::unique_ptr<VitTower> tower_;
  std::unique_ptr<Projector> projector_;
};

}  // namespace

std::unique_ptr<LanguageModel> paligemma(const ConfigReader& raw, const ConfigReader& text) {
  return std::make_unique<PaliGemma>(raw, text);
}

}  // namespace lmx::models::vlm
