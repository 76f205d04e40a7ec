// Fusing adapters into the base weights (mlx-lm's `fuse`): W' = W + scale * (a @ b)^T
// (DoRA: each row of that rescaled to norm m), computed in f32 and stored in the weight's
// dtype; a quantized weight is dequantized, fused and quantized again with its bits and
// group size, or left dense with dequantize. Full fine-tuning's weights replace the
// model's.
#pragma once

#include "lmx/train/lora.h"

namespace lmx::train {

// Fuses every adapter into its Linear (and detaches any attached adapter). With
// `dequantize`, every quantized Linear and Embedding of the model ends dense (f32 for
// f32 scales, else the scales' dtype).
void fuse_adapters(models::TransformerLM& model, const LoraAdapters& adapters, bool dequantize);

}  // namespace lmx::train
