#include "lmx/models/quantize.h"

#include <cctype>

#include "lmx/base/error.h"
#include "lmx/models/vlm/vision_language_model.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/mlp.h"

namespace lmx::models {

namespace {

// Why a weight of `in` inputs stays as it is, or "" when it can be quantized.
std::string why_unquantized(bool already_quantized, int64_t in, int group_size) {
  if (already_quantized) return "already quantized";
  if (in % group_size != 0) {
    return "input dimension " + std::to_string(in) + " is not a multiple of the group size " +
           std::to_string(group_size);
  }
  return "";
}

// The first all-digit component of a dotted path ("model.layers.3.mlp" -> 3), else 0.
int64_t layer_index(const std::string& path) {
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('.', start);
    if (end == std::string::npos) end = path.size();
    bool digits = end > start;
    for (size_t i = start; i < end; ++i) digits = digits && std::isdigit(static_cast<unsigned char>(path[i]));
    if (digits) return std::stoll(path.substr(start, end - start));
    start = end + 1;
  }
  return 0;
}

}  // namespace

const std::vector<std::string>& quant_recipes() {
  static const std::vector<std::string> names = {"mixed_2_6", "mixed_3_4", "mixed_3_6", "mixed_4_6"};
  return names;
}

int recipe_bits(const std::string& recipe, const std::string& path, int64_t num_layers) {
  int low = 0, high = 6;
  if (recipe == "mixed_2_6") low = 2;
  else if (recipe == "mixed_3_4") low = 3, high = 4;
  else if (recipe == "mixed_3_6") low = 3;
  else if (recipe == "mixed_4_6") low = 4;
  else throw InvalidArgument("quantize: unknown recipe '" + recipe + "' (mixed_2_6, mixed_3_4, mixed_3_6, mixed_4_6)");
  const int64_t i = layer_index(path), n = num_layers;
  const bool more = i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
  const auto has = [&](const char* s) { return path.find(s) != std::string::npos; };
  if ((has("v_proj") || has("v_a_proj") || has("v_b_proj")) && more) return high;
  if (has("down_proj") && more) return high;
  if (has("lm_head")) return high;
  return low;
}

std::vector<std::string> quantize_model(LanguageModel& model, const QuantizeOptions& o,
                                        std::vector<UnquantizedModule>* skipped,
                                        std::map<std::string, LayerQuantization>* per_layer) {
  return quantize_module(model, model.num_layers(), o, skipped, per_layer);
}

std::vector<std::string> quantize_module(nn::Module& model, int64_t num_layers, const QuantizeOptions& o,
                                         std::vector<UnquantizedModule>* skipped,
                                         std::map<std::string, LayerQuantization>* per_layer) {
  if (!o.recipe.empty()) {
    if (o.mode != QuantMode::affine) throw InvalidArgument("quantize: recipes support affine quantization only");
    recipe_bits(o.recipe, "", 1);  // an unknown recipe fails before anything changes
  } else if (!is_supported_quantization(o.bits, o.group_size, o.mode)) {
    throw InvalidArgument(std::string("quantize: unsupported ") + quant_mode_name(o.mode) +
                          " bits=" + std::to_string(o.bits) + " group_size=" + std::to_string(o.group_size) +
                          " (" + supported_quantization_text(o.mode) + ")");
  }
  std::vector<std::string> done;
  // Vision-language models: the language model only, as mlx-community's folders have it
  // (vision towers and projectors are small and sensitive to rounding).
  const bool text_only = dynamic_cast<const vlm::VisionLanguageModel*>(&model) != nullptr;
  model.for_each_module([&](const std::string& path, nn::Module& m) {
    auto skip = [&](const std::string& why) {
      if (why.empty()) return false;
      if (skipped) skipped->push_back({path, why});
      return true;
    };
    const bool layer = dynamic_cast<nn::Linear*>(&m) || dynamic_cast<nn::Embedding*>(&m);
    if (text_only && layer && !path.starts_with("language_model.")) {
      skip("not part of the language model");
      return;
    }
    const int bits = o.recipe.empty() ? o.bits : recipe_bits(o.recipe, path, num_layers);
    if (auto* l = dynamic_cast<nn::Linear*>(&m)) {
      if (l->int8_activations() && skip("ternary (BitNet), kept packed")) return;
      if (skip(why_unquantized(l->weight().quantized(), l->in_features(), o.group_size))) return;
      l->quantize(bits, o.group_size, o.scale_dtype, o.mode);
    } else if (auto* e = dynamic_cast<nn::Embedding*>(&m)) {
      if (skip(why_unquantized(e->weight().quantized(), e->dim(), o.group_size))) return;
      e->quantize(bits, o.group_size, o.scale_dtype, o.mode);
    } else if (auto* s = dynamic_cast<nn::SwitchLinear*>(&m)) {
      s->quantize(bits, o.group_size, o.scale_dtype, o.mode);
    } else {
      return;
    }
    done.push_back(path);
    if (per_layer && !o.recipe.empty()) (*per_layer)[path] = {bits, o.group_size, o.mode};
  });
  prepare_module_for_inference(model);
  return done;
}

}  // namespace lmx::models
