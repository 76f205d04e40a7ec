// Image inputs of a vision-language model: an image processor's outputs, or the same
// tensors read from a safetensors file (what `lmx preprocess` writes).
#pragma once

#include <filesystem>

#include "lmx/models/vlm/vision_language_model.h"
#include "lmx/vision/image_processor.h"

namespace lmx::models::vlm {

// pixel_values (required) and image_grid_thw (when present) of a processor's output.
ImageInputs image_inputs(const vision::ProcessorOutput& out);
// Adds a video processor's outputs (pixel_values_videos, video_grid_thw) and the seconds
// per temporal patch of each video (Qwen2.5-VL's second_per_grid_ts) to `in`.
void add_video_inputs(ImageInputs& in, const vision::ProcessorOutput& out, const std::vector<double>& second_per_grid_ts);
// The same from a safetensors file (pixel_values and / or pixel_values_videos, the grids,
// second_per_grid_ts); errors name the file and the tensor.
ImageInputs read_image_inputs(const std::filesystem::path& file);

}  // namespace lmx::models::vlm
