// The processor families behind make_image_processor() (detail).
#pragma once

#include <memory>

#include "lmx/vision/image_processor.h"
#include "lmx/vision/processor_config.h"

namespace lmx::vision::detail {

std::unique_ptr<ImageProcessor> make_qwen2_vl_processor(const ConfigReader& config);
// CLIP (shortest edge + centre crop), SigLIP (fixed size), LLaVA (CLIP + pad to square).
std::unique_ptr<ImageProcessor> make_clip_processor(const ConfigReader& config);
std::unique_ptr<ImageProcessor> make_siglip_processor(const ConfigReader& config);
std::unique_ptr<ImageProcessor> make_llava_processor(const ConfigReader& config);
std::unique_ptr<ImageProcessor> make_gemma3_processor(const ConfigReader& config);
// Idefics3 and SmolVLM: the same steps, other defaults.
std::unique_ptr<ImageProcessor> make_idefics3_processor(const ConfigReader& config, bool smolvlm);
// Pixtral (Mistral 3): variable sizes in whole patches, padded; image_sizes.
std::unique_ptr<ImageProcessor> make_pixtral_processor(const ConfigReader& config);

// Appends `planes` ([3, h, w]) to a float tensor being built image by image.
void append_planes(ProcessorTensor& tensor, const std::vector<float>& planes);

}  // namespace lmx::vision::detail
