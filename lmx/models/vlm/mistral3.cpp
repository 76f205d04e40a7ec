// Mistral 3 (Mistral-Small-3.1 style): the Pixtral tower's hidden state of
// vision_feature_layer, RMS-normed, each spatial_merge_size^2 block of patches merged by a
// learned linear layer (Mistral3PatchMerger), then a 2-layer projector into a Mistral
// text model. An image's prompt is its rows of [IMG] placeholders, each row closed by
// [IMG_BREAK], the last by [IMG_END] (PixtralProcessor).
#include <string>

#include "lmx/base/error.h"
#include "lmx/core/ops/shape.h"
#include "lmx/models/vlm/pixtral_tower.h"
#include "lmx/models/vlm/vision_language_model.h"
#include "lmx/models/vlm/vlm_families.h"

namespace lmx::models::vlm {
namespace {

struct PatchMerger : nn::Module {
  PatchMerger(int64_t hidden, int64_t merge) : merging_layer(hidden * merge * merge, hidden, false) {
    register_module("merging_layer", merging_layer);
  }
  nn::Linear merging_layer;
};

struct Projector : nn::Module {
  Projector(int64_t vision, int64_t text, int64_t layers, int64_t merge, bool bias, float eps, nn::Activation act)
      : norm(vision, eps), patch_merger(vision, merge), linear_1(vision * layers, text, bias),
        linear_2(text, text, bias), act(act) {
    register_module("norm", norm);
    register_module("patch_merger", patch_merger);
    register_module("linear_1", linear_1);
    register_module("linear_2", linear_2);
  }
  nn::RMSNorm norm;
  PatchMerger patch_merger;
  nn::Linear linear_1, linear_2;
  nn::Activation act;
};

class Mistral3 : public VisionLanguageModel {
 public:
  Mistral3(const ConfigReader& raw, const ConfigReader& text)
      : VisionLanguageModel("mistral3", make_text_model(text), raw.get_int("image_token_index", 10)) {
    auto vision = raw.object("vision_config");
    if (!vision) raw.fail("vision_config", "is missing");
    tower_ = std::make_unique<PixtralTower>(read_pixtral(*vision));
    merge_ = raw.get_int("spatial_merge_size", 2);
    if (merge_ <= 0) raw.fail("spatial_merge_size", "must be positive");
    feature_layer_ = feature_layer_index(raw, raw.get_int("vision_feature_layer", -1), tower_->num_layers());
    projector_ = std::make_unique<Projector>(
        tower_->options().hidden, text_->spec().hidden, 1, merge_, raw.get_bool("multimodal_projector_bias", false),
        static_cast<float>(text.get_non_negative("rms_norm_eps", 1e-5)),
        nn::parse_activation(raw.get_string("projector_hidden_act", "gelu")));
    register_module("vision_tower", *tower_);
    register_module("multi_modal_projector", *projector_);
  }

  std::vector<int64_t> image_token_counts(const ImageInputs& images) const override {
    std::vector<int64_t> out;
    for (const auto& [rows, cols] : grids(images)) out.push_back(rows * cols);
    return out;
  }

  std::vector<int32_t> image_prompt(const ImageInputs& images, size_t index,
                                    const tokenizer::Tokenizer& tok) const override {
    const auto [rows, cols] = grids(images).at(index);
    return pixtral_image_prompt(rows, cols, static_cast<int32_t>(image_token_), tok, model_type_);
  }

  Tensor image_features(const ImageInputs& images) const override {
    const int64_t p = tower_->options().patch, s = merge_;
    const auto sizes = read_image_sizes(images.image_sizes, images.pixel_values, p * s);
    Tensor x = tower_->hidden_states(images.pixel_values, sizes, feature_layer_).back();  // [patches, d]
    x = projector_->norm.forward(x);
    const int64_t d = x.dim(1);
    // Each image's s x s blocks of patches, row-major, features channel-major (torch unfold).
    std::vector<Tensor> merged;
    int64_t start = 0;
    for (const auto& [h, w] : sizes) {
      const int64_t gh = h / p, gw = w / p;
      Tensor grid = x.slice(0, start, start + gh * gw).reshape({gh / s, s, gw / s, s, d});
      merged.push_back(grid.permute({0, 2, 4, 1, 3}).contiguous().reshape({gh * gw / (s * s), d * s * s}));
      start += gh * gw;
    }
    x = projector_->patch_merger.merging_layer.forward(merged.size() == 1 ? merged[0] : ops::concat(merged, 0));
    x = projector_->linear_1.forward(x);
    return projector_->linear_2.forward(nn::activate(projector_->act, x));
  }

 private:
  // Merged rows and columns of each image.
  std::vector<std::pair<int64_t, int64_t>> grids(const ImageInputs& images) const {
    const int64_t unit = tower_->options().patch * merge_;
    std::vector<std::pair<int64_t, int64_t>> out;
    for (const auto& [h, w] : read_image_sizes(images.image_sizes, images.pixel_values, unit)) {
      out.emplace_back(h / unit, w / unit);
    }
    return out;
  }

  std::unique_ptr<PixtralTower> tower_;
  std::unique_ptr<Projector> projector_;
  int64_t merge_ = 2, feature_layer_ = 0;
};

}  // namespace

std::unique_ptr<LanguageModel> mistral3(const ConfigReader& raw, const ConfigReader& text) {
  return std::make_unique<Mistral3>(raw, text);
}

}  // namespace lmx::models::vlm
