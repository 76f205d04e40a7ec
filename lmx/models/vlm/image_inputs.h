// Image inputs of a vision-language model: an image processor's outputs, or the same
// tensors read from a safetensors file (what `lmx preprocess` writes).
#pragma once

#include <filesystem>

#include "lmx/models/vlm/vision_language_model.h"
#include "lmx/vision/image_processor.h"

namespace lmx::models::vlm {

// pixel_values (required) and image_grid_thw (when present) of a processor's output.
ImageInputs image_inputs(const vision::ProcessorOutput& out);
// The same from a safetensors file; errors name the file and the tensor.
ImageInputs read_image_inputs(const std::filesystem::path& file);

}  // namespace lmx::models::vlm
