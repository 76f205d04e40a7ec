// Image processors equal to transformers' Pillow-based ones (the *ImageProcessorPil
// classes, use_fast=False), chosen by `image_processor_type` of preprocessor_config.json
// or processor_config.json. Outputs carry transformers' tensor names and layouts.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lmx/vision/image.h"
#include "lmx/vision/large_buffer.h"

namespace lmx::vision {

// Float outputs (tens of MB for a large image): huge pages, no zero fill on resize().
using FloatValues = std::vector<float, detail::HugePageAllocator<float>>;

// One output array: float32 (`f32`) or int64 (`i64`) values, row-major.
struct ProcessorTensor {
  std::string name{};
  std::vector<int64_t> shape{};
  FloatValues f32{};
  std::vector<int64_t> i64{};
  bool is_f32() const { return i64.empty() && !f32.empty(); }
};

struct ProcessorOutput {
  std::vector<ProcessorTensor> tensors;
  // lmx::InvalidArgument when absent.
  const ProcessorTensor& at(std::string_view name) const;
};

class ImageProcessor {
 public:
  virtual ~ImageProcessor() = default;
  // The family's class name as transformers spells it, e.g. "Qwen2VLImageProcessor".
  virtual std::string_view type() const = 0;
  // All images of one request (a batch of one sample). lmx::InvalidArgument naming the
  // processor for an image it cannot take (e.g. Qwen2-VL's aspect ratio over 200).
  virtual ProcessorOutput process(const std::vector<Image>& images) const = 0;
};

// From the JSON text of a preprocessor_config.json (or a processor_config.json with an
// "image_processor" object); `label` names the source in errors. Unknown keys are
// ignored; a wrongly typed known key is an lmx::FormatError naming it; an unknown
// image_processor_type is lmx::Unsupported.
std::unique_ptr<ImageProcessor> make_image_processor(std::string_view json_text,
                                                     const std::string& label);

// A config file, or a model folder (its preprocessor_config.json, else processor_config.json).
std::unique_ptr<ImageProcessor> load_image_processor(const std::filesystem::path& path);

// The image_processor_type values understood (without the optional "Fast"/"Pil" suffix).
std::vector<std::string> supported_image_processor_types();

}  // namespace lmx::vision
