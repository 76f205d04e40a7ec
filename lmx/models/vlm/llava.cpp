// LLaVA (llava-1.5 style): a CLIP (or SigLIP) tower, the hidden state of
// vision_feature_layer (several layers concatenated when it is a list), the class token
// dropped under the "default" strategy, a 2-layer projector, any decoder as text model.
// With a Pixtral tower (Pixtral-12B: vision_config.model_type "pixtral"): images of any
// size, the hidden state of one layer under the "full" strategy, the same projector, and
// each image's prompt as PixtralProcessor writes it (rows of [IMG] closed by [IMG_BREAK] /
// [IMG_END]).
#include <string>

#include "lmx/base/error.h"
#include "lmx/core/ops/shape.h"
#include "lmx/models/vlm/pixtral_tower.h"
#include "lmx/models/vlm/vision_language_model.h"
#include "lmx/models/vlm/vit_tower.h"
#include "lmx/models/vlm/vlm_families.h"

namespace lmx::models::vlm {
namespace {

struct Projector : nn::Module {
  Projector(int64_t in, int64_t hidden, bool bias, nn::Activation act)
      : linear_1(in, hidden, bias), linear_2(hidden, hidden, bias), act(act) {
    register_module("linear_1", linear_1);
    register_module("linear_2", linear_2);
  }
  Tensor forward(const Tensor& x) const { return linear_2.forward(nn::activate(act, linear_1.forward(x))); }
  nn::Linear linear_1, linear_2;
  nn::Activation act;
};

class Llava : public VisionLanguageModel {
 public:
  Llava(const ConfigReader& raw, const ConfigReader& text)
      : VisionLanguageModel("llava", make_text_model(text), raw.get_int("image_token_index", raw.get_int("image_token_id", 32000))) {
    auto vision = raw.object("vision_config");
    if (!vision) raw.fail("vision_config", "is missing");
    const std::string type = vision->get_string("model_type", "clip_vision_model");
    if (type == "pixtral") {
      init_pixtral(raw, *vision);
      return;
    }
    if (type != "clip_vision_model" && type != "siglip_vision_model") {
      vision->fail("model_type",
                   "'" + type + "' is not a supported LLaVA vision tower (clip_vision_model, siglip_vision_model, pixtral)");
    }
    tower_ = std::make_unique<VitTower>(read_vit_tower(*vision, type == "clip_vision_model"));
    const auto& layer = raw.json().contains("vision_feature_layer") ? raw.json()["vision_feature_layer"]
                                                                     : nlohmann::json(-2);
    for (const auto& l : layer.is_array() ? layer : nlohmann::json::array({layer})) {
      if (!l.is_number_integer()) raw.fail("vision_feature_layer", "must be an integer or a list of integers");
      feature_layers_.push_back(feature_layer_index(raw, l.get<int64_t>(), tower_->num_layers()));
    }
    const std::string strategy = raw.get_string("vision_feature_select_strategy", "default");
    if (strategy != "default" && strategy != "full") raw.fail("vision_feature_select_strategy", "must be default or full");
    drop_first_ = strategy == "default";
    const int64_t width = tower_->options().hidden * static_cast<int64_t>(feature_layers_.size());
    projector_ = std::make_unique<Projector>(width, text_->spec().hidden, raw.get_bool("multimodal_projector_bias", true),
                                             nn::parse_activation(raw.get_string("projector_hidden_act", "gelu")));
    register_module("vision_tower", *tower_);
    register_module("multi_modal_projector", *projector_);
  }

  std::vector<int64_t> image_token_counts(const ImageInputs& images) const override {
    if (pixtral_) {
      std::vector<int64_t> out;
      for (const auto& [h, w] : pixtral_sizes(images)) out.push_back((h / pixtral_patch()) * (w / pixtral_patch()));
      return out;
    }
    const int64_t per_image = tower_->num_patches() + (tower_->options().clip ? 1 : 0) - (drop_first_ ? 1 : 0);
    return std::vector<int64_t>(static_cast<size_t>(images.pixel_values.dim(0)), per_image);
  }

  std::vector<int32_t> image_prompt(const ImageInputs& images, size_t index,
                                    const tokenizer::Tokenizer& tok) const override {
    if (!pixtral_) return VisionLanguageModel::image_prompt(images, index, tok);
    const auto [h, w] = pixtral_sizes(images).at(index);
    return pixtral_image_prompt(h / pixtral_patch(), w / pixtral_patch(), static_cast<int32_t>(image_token_), tok,
                                model_type_);
  }

  Tensor image_features(const ImageInputs& images) const override {
    if (pixtral_) {
      const Tensor x = pixtral_->hidden_states(images.pixel_values, pixtral_sizes(images), feature_layers_[0]).back();
      return projector_->forward(x);  // [patches of all images, text hidden]
    }
    int64_t deepest = 0;
    for (int64_t l : feature_layers_) deepest = std::max(deepest, l);
    const std::vector<Tensor> hs = tower_->hidden_states(images.pixel_values.to(Dtype::f32), deepest);
    std::vector<Tensor> picked;
    for (int64_t l : feature_layers_) {
      const Tensor& h = hs[static_cast<size_t>(l)];  // [images, tokens, width]
      picked.push_back(drop_first_ ? h.slice(1, 1, h.dim(1)) : h);
    }
    Tensor x = picked.size() == 1 ? picked[0] : ops::concat(picked, 2);
    x = projector_->forward(x);
    return x.reshape({x.dim(0) * x.dim(1), x.dim(2)});
  }

 private:
  // Pixtral-12B's layout: one feature layer, every patch kept ("full").
  void init_pixtral(const ConfigReader& raw, const ConfigReader& vision) {
    pixtral_ = std::make_unique<PixtralTower>(read_pixtral(vision));
    const int64_t layer = raw.get_int("vision_feature_layer", -1);
    feature_layers_.push_back(feature_layer_index(raw, layer, pixtral_->num_layers()));
    if (raw.get_string("vision_feature_select_strategy", "full") != "full") {
      raw.fail("vision_feature_select_strategy", "must be full with a Pixtral tower (every patch is an image token)");
    }
    drop_first_ = false;
    projector_ = std::make_unique<Projector>(pixtral_->options().hidden, text_->spec().hidden,
                                             raw.get_bool("multimodal_projector_bias", true),
                                             nn::parse_activation(raw.get_string("projector_hidden_act", "gelu")));
    register_module("vision_tower", *pixtral_);
    register_module("multi_modal_projector", *projector_);
  }
  int64_t pixtral_patch() const { return pixtral_->options().patch; }
  std::vector<std::pair<int64_t, int64_t>> pixtral_sizes(const ImageInputs& images) const {
    return read_image_sizes(images.image_sizes, images.pixel_values, pixtral_patch());
  }

  std::unique_ptr<PixtralTower> pixtral_;
  std::unique_ptr<VitTower> tower_;
  std::unique_ptr<Projector> projector_;
  std::vector<int64_t> feature_layers_;
  bool drop_first_ = true;
};

}  // namespace

std::unique_ptr<LanguageModel> llava(const ConfigReader& raw, const ConfigReader& text) {
  return std::make_unique<Llava>(raw, text);
}

}  // namespace lmx::models::vlm
