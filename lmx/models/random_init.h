// Random weights of a real model's shape, for benchmarks that measure speed without
// downloading the model (decode speed does not depend on the weight values).
#pragma once

#include <optional>

#include "lmx/models/language_model.h"
#include "lmx/models/quantize.h"

namespace lmx::models {

struct RandomInitOptions {
  Dtype dtype = Dtype::bf16;                    // float weights (and quantization scales)
  std::optional<QuantizeOptions> quantization;  // quantize each matrix as it is made
  uint64_t seed = 0;
  Device device = Device::cpu();  // made (and quantized) on the host, then moved here
};

// Fills every parameter: norms near 1, matrices uniform in +-0.02 (so activations stay
// finite through many layers). Quantizes layer by layer to keep the peak memory low.
void randomize_model(LanguageModel& model, const RandomInitOptions& options);

}  // namespace lmx::models
