// LLaVA (llava-1.5 style): a CLIP (or SigLIP) tower, the hidden state of
// vision_feature_layer (several layers concatenated when it is a list), the class token
// dropped under the "default" strategy, a 2-layer projector, any decoder as text model.
#include <string>

#include "lmx/base/error.h"
#include "lmx/core/ops/shape.h"
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
    if (type != "clip_vision_model" && type != "siglip_vision_model") {
      vision->fail("model_type", "'" + type + "' is not a supported LLaVA vision tower (clip_vision_model, siglip_vision_model)");
    }
    tower_ = std::make_unique<VitTower>(read_vit_tower(*vision, type == "clip_vision_model"));
    const auto& layer = raw.json().contains("vision_feature_layer") ? raw.json()["vision_feature_layer"]
                                                                     : nlohmann::json(-2);
    for (const auto& l : layer.is_array() ? layer : nlohmann::json::array({layer})) {
      if (!l.is_number_integer()) raw.fail("vision_feature_layer", "must be an integer or a list of integers");
      int64_t i = l.get<int64_t>();
      if (i < 0) i += tower_->num_layers() + 1;
      if (i < 0 || i > tower_->num_layers()) raw.fail("vision_feature_layer", "is out of the tower's range");
      feature_layers_.push_back(i);
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
    const int64_t per_image = tower_->num_patches() + (tower_->options().clip ? 1 : 0) - (drop_first_ ? 1 : 0);
    return std::vector<int64_t>(static_cast<size_t>(images.pixel_values.dim(0)), per_image);
  }

  Tensor image_features(const ImageInputs& images) const override {
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
