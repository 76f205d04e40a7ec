#include "lmx/models/vlm/image_inputs.h"

#include "lmx/base/error.h"
#include "lmx/io/safetensors.h"

namespace lmx::models::vlm {

ImageInputs image_inputs(const vision::ProcessorOutput& out) {
  ImageInputs in;
  const vision::ProcessorTensor& pv = out.at("pixel_values");
  in.pixel_values = Tensor::from_vector(pv.f32, pv.shape);
  for (const auto& t : out.tensors) {
    if (t.name == "image_grid_thw") in.image_grid_thw = Tensor::from_vector(t.i64, t.shape);
  }
  return in;
}

ImageInputs read_image_inputs(const std::filesystem::path& file) {
  auto st = io::SafetensorsFile::open(file);
  auto read = [&](const io::TensorInfo& info) {
    Tensor t = Tensor::wrap(const_cast<std::byte*>(info.data), info.shape, info.dtype, st.owner());
    return t.clone();
  };
  ImageInputs in;
  const io::TensorInfo& pv = st.at("pixel_values");
  if (!is_floating(pv.dtype)) {
    throw FormatError(file.string() + ": pixel_values must be floating point, got " + std::string(dtype_name(pv.dtype)));
  }
  in.pixel_values = read(pv).to(Dtype::f32);
  if (const io::TensorInfo* grid = st.find("image_grid_thw")) {
    if (is_floating(grid->dtype)) throw FormatError(file.string() + ": image_grid_thw must be integers");
    in.image_grid_thw = read(*grid);
  }
  return in;
}

}  // namespace lmx::models::vlm
