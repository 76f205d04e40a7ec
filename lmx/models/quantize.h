// Quantizing a loaded model in place, as mlx-lm's convert does: every Linear,
// Embedding and stacked-expert layer whose input dimension is a multiple of the group
// size becomes MLX quantized (affine, mxfp4, mxfp8 or nvfp4), optionally with mlx-lm's
// mixed-bits recipes (--quant-predicate mixed_2_6, mixed_3_4, mixed_3_6, mixed_4_6).
// Of a vision-language model only the language model is quantized (mlx-community's layout).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "lmx/core/quantized_weight.h"
#include "lmx/models/language_model.h"

namespace lmx::models {

struct QuantizeOptions {
  int bits = 4;
  int group_size = 64;
  Dtype scale_dtype = Dtype::f32;  // mlx keeps scales in the weights' dtype (affine only)
  QuantMode mode = QuantMode::affine;
  // "" (every layer alike) or one of mlx-lm's recipes (quant_recipes()); affine only. The
  // recipe's low bits replace `bits`.
  std::string recipe = "";
};

// One layer's entry of config.json's "quantization" (mlx-lm writes one per layer when a
// recipe chose the bits).
struct LayerQuantization {
  int bits = 4;
  int group_size = 64;
  QuantMode mode = QuantMode::affine;
};

// A Linear or Embedding left as it was, and why (e.g. "input dimension 172 is not a
// multiple of the group size 64").
struct UnquantizedModule {
  std::string path;
  std::string reason;
};

// mlx-lm's recipe names: mixed_2_6, mixed_3_4, mixed_3_6, mixed_4_6 (low bits _ high bits).
const std::vector<std::string>& quant_recipes();

// The bits mlx-lm's recipe gives the module at `path` of a model of `num_layers` layers:
// the high bits for lm_head, and for v_proj (v_a_proj, v_b_proj) and down_proj in the
// first and last eighth of the layers and every third layer between; the low bits
// elsewhere. InvalidArgument for an unknown recipe.
int recipe_bits(const std::string& recipe, const std::string& path, int64_t num_layers);

// Returns the paths of the modules it quantized; the Linear and Embedding modules it left
// unquantized go to `skipped` when given; with a recipe, each quantized path's settings go
// to `per_layer` (for the config's "quantization").
std::vector<std::string> quantize_model(LanguageModel& model, const QuantizeOptions& options,
                                        std::vector<UnquantizedModule>* skipped = nullptr,
                                        std::map<std::string, LayerQuantization>* per_layer = nullptr);

// The same for any module tree (an embedder's encoder): `num_layers` feeds a recipe's choice.
std::vector<std::string> quantize_module(nn::Module& module, int64_t num_layers, const QuantizeOptions& options,
                                         std::vector<UnquantizedModule>* skipped = nullptr,
                                         std::map<std::string, LayerQuantization>* per_layer = nullptr);

}  // namespace lmx::models
