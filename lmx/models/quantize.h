// Quantizing a loaded model in place, as mlx-lm's convert does: every Linear,
// Embedding and stacked-expert layer whose input dimension is a multiple of the group
// size becomes MLX-affine quantized.
#pragma once

#include <string>
#include <vector>

#include "lmx/models/language_model.h"

namespace lmx::models {

struct QuantizeOptions {
  int bits = 4;
  int group_size = 64;
  Dtype scale_dtype = Dtype::f32;  // mlx keeps scales in the weights' dtype
};

// A Linear or Embedding left as it was, and why (e.g. "input dimension 172 is not a
// multiple of the group size 64").
struct UnquantizedModule {
  std::string path;
  std::string reason;
};

// Returns the paths of the modules it quantized (for the config's "quantization"); the
// Linear and Embedding modules it left unquantized go to `skipped` when given.
std::vector<std::string> quantize_model(LanguageModel& model, const QuantizeOptions& options,
                                        std::vector<UnquantizedModule>* skipped = nullptr);

}  // namespace lmx::models
