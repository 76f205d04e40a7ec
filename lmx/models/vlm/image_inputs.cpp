#include "lmx/models/vlm/image_inputs.h"

#include "lmx/base/error.h"
#include "lmx/io/safetensors.h"
#include "lmx/io/safetensors_tensor.h"

namespace lmx::models::vlm {
namespace {

Tensor float_tensor(const vision::ProcessorTensor& t) {
  Tensor out = Tensor::empty(t.shape, Dtype::f32);
  out.copy_from_host(t.f32.data(), t.f32.size() * sizeof(float));
  return out;
}

// The integer processor outputs a model may take, by transformers' names.
std::vector<std::pair<std::string, Tensor*>> integer_inputs(ImageInputs& in) {
  return {{"image_grid_thw", &in.image_grid_thw}, {"image_sizes", &in.image_sizes},
          {"pixel_attention_mask", &in.pixel_attention_mask}, {"rows", &in.rows}, {"cols", &in.cols},
          {"video_grid_thw", &in.video_grid_thw}};
}

}  // namespace

void add_video_inputs(ImageInputs& in, const vision::ProcessorOutput& out, const std::vector<double>& second_per_grid_ts) {
  const vision::ProcessorTensor& pv = out.at("pixel_values_videos");
  const vision::ProcessorTensor& grid = out.at("video_grid_thw");
  in.pixel_values_videos = float_tensor(pv);
  in.video_grid_thw = Tensor::from_vector(grid.i64, grid.shape);
  in.second_per_grid_ts = second_per_grid_ts;
}

ImageInputs image_inputs(const vision::ProcessorOutput& out) {
  ImageInputs in;
  const vision::ProcessorTensor& pv = out.at("pixel_values");
  in.pixel_values = float_tensor(pv);
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
    return io::tensor_of(info, st.owner()).clone();
  };
  ImageInputs in;
  auto floats = [&](const char* name) {
    const io::TensorInfo* t = st.find(name);
    if (t && !is_floating(t->dtype)) {
      throw FormatError(file.string() + ": " + name + " must be floating point, got " + std::string(dtype_name(t->dtype)));
    }
    return t ? read(*t).to(Dtype::f32) : Tensor();
  };
  in.pixel_values = floats("pixel_values");
  in.pixel_values_videos = floats("pixel_values_videos");
  if (in.empty()) throw FormatError(file.string() + ": holds neither pixel_values nor pixel_values_videos");
  if (Tensor s = floats("second_per_grid_ts"); s.defined()) {
    for (float x : s.to_float_vector()) in.second_per_grid_ts.push_back(x);
  }
  for (auto [name, slot] : integer_inputs(in)) {
    if (const io::TensorInfo* t = st.find(name)) {
      if (is_floating(t->dtype)) throw FormatError(file.string() + ": " + name + " must be integers");
      *slot = read(*t).to(Dtype::i64);
    }
  }
  return in;
}

}  // namespace lmx::models::vlm
