#include "lmx/models/vlm/image_inputs.h"

#include "lmx/base/error.h"
#include "lmx/io/safetensors.h"

namespace lmx::models::vlm {
namespace {

// The integer processor outputs a model may take, by transformers' names.
std::vector<std::pair<std::string, Tensor*>> integer_inputs(ImageInputs& in) {
  return {{"image_grid_thw", &in.image_grid_thw}, {"image_sizes", &in.image_sizes},
          {"pixel_attention_mask", &in.pixel_attention_mask}, {"rows", &in.rows}, {"cols", &in.cols}};
}

}  // namespace

ImageInputs image_inputs(const vision::ProcessorOutput& out) {
  ImageInputs in;
  const vision::ProcessorTensor& pv = out.at("pixel_values");
  in.pixel_values = Tensor::from_vector(pv.f32, pv.shape);
  for (const auto& t : out.tensors) {
    if (t.is_f32()) continue;
    for (auto [name, slot] : integer_inputs(in)) {
      if (t.name == name) *slot = Tensor::from_vector(t.i64, t.shape);
    }
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
  for (auto [name, slot] : integer_inputs(in)) {
    if (const io::TensorInfo* t = st.find(name)) {
      if (is_floating(t->dtype)) throw FormatError(file.string() + ": " + name + " must be integers");
      *slot = read(*t).to(Dtype::i64);
    }
  }
  return in;
}

}  // namespace lmx::models::vlm
