#include "lmx/core/quantized_weight.h"

#include <cstdlib>
#include <string>

#include "lmx/base/env_switch.h"
#include "lmx/base/error.h"
#include "lmx/core/backend.h"
#include "lmx/core/device_graph.h"
#include "lmx/core/step_values.h"

namespace lmx {
namespace {

// Rows [r0, r1) of dequant(W) into out (row stride in_features, on the weight's device),
// from whichever copy is held: both give the same values bit for bit.
void dequantize_into(const QuantizedWeight& q, int64_t r0, int64_t r1, float* out) {
  Backend& backend = backend_for(q.device());
  if (q.has_mlx_tensors())
    backend.dequantize(q.view(), r0, r1, out, q.in_features());
  else
    backend.dequantize_prepared(*q.prepared, r0, r1, out, q.in_features());
}

}  // namespace

int64_t QuantizedWeight::out_features() const {
  if (w.defined()) return w.dim(0);
  return prepared ? prepared->n() : 0;
}

int64_t QuantizedWeight::in_features() const {
  if (w.defined()) return w.dim(1) * 32 / bits;
  return prepared ? prepared->k() : 0;
}

Dtype QuantizedWeight::scale_dtype() const {
  if (scales.defined()) return scales.dtype();
  return prepared ? prepared->scale_dtype() : Dtype::f32;
}

Device QuantizedWeight::device() const {
  if (w.defined()) return w.device();
  return prepared ? prepared->device() : Device::cpu();
}

kernels::QuantView QuantizedWeight::view() const {
  LMX_ASSERT(has_mlx_tensors());
  kernels::QuantView v;
  v.w = static_cast<const uint32_t*>(w.raw_data());
  v.scales = scales.raw_data();
  v.biases = biases.defined() ? biases.raw_data() : nullptr;
  v.scale_dtype = scales.dtype();
  v.mode = mode;
  v.n = out_features();
  v.k = in_features();
  v.bits = bits;
  v.group_size = group_size;
  v.w_stride = w.strides()[0];
  v.s_stride = scales.strides()[0];
  return v;
}

const char* quant_mode_name(QuantMode mode) {
  switch (mode) {
    case QuantMode::affine: return "affine";
    case QuantMode::mxfp4: return "mxfp4";
    case QuantMode::mxfp8: return "mxfp8";
    case QuantMode::nvfp4: return "nvfp4";
  }
  return "?";
}

QuantMode parse_quant_mode(const std::string& name, const std::string& what) {
  for (QuantMode m : {QuantMode::affine, QuantMode::mxfp4, QuantMode::mxfp8, QuantMode::nvfp4})
    if (name == quant_mode_name(m)) return m;
  throw InvalidArgument(what + ": unknown quantization mode '" + name +
                        "' (affine, mxfp4, mxfp8, nvfp4)");
}

std::pair<int, int> default_group_size_and_bits(QuantMode mode) {
  switch (mode) {
    case QuantMode::mxfp4: return {32, 4};
    case QuantMode::mxfp8: return {32, 8};
    case QuantMode::nvfp4: return {16, 4};
    case QuantMode::affine: break;
  }
  return {64, 4};
}

bool is_supported_quantization(int bits, int group_size, QuantMode mode) {
  if (mode != QuantMode::affine) {
    auto [group, b] = default_group_size_and_bits(mode);
    return bits == b && group_size == group;
  }
  bool bits_ok = bits == 2 || bits == 3 || bits == 4 || bits == 5 || bits == 6 || bits == 8;
  bool group_ok = group_size == 32 || group_size == 64 || group_size == 128;
  return bits_ok && group_ok;
}

std::string supported_quantization_text(QuantMode mode) {
  if (mode == QuantMode::affine) return "affine: bits 2, 3, 4, 5, 6, 8; group sizes 32, 64, 128";
  auto [group, bits] = default_group_size_and_bits(mode);
  return std::string(quant_mode_name(mode)) + " needs bits " + std::to_string(bits) + ", group size " +
         std::to_string(group);
}

void QuantizedWeight::validate(const std::string& name) const {
  auto fail = [&](const std::string& what) {
    throw FormatError("quantized weight '" + name + "': " + what);
  };
  // The CUDA kernels decode these modes too, but have not run on a GPU yet: opt in.
  if (mode != QuantMode::affine && !device().is_cpu() && !cuda_fp_quant()) {
    throw Unsupported("quantized weight '" + name + "': " + quant_mode_name(mode) +
                      " weights run on the CPU only for now, not on " + device().str() +
                      " (LMX_CUDA_FP_QUANT=1 runs them there: not yet verified on a GPU)");
  }
  if (!w.defined() && prepared) {
    if (prepared->mode() != mode) {
      fail(std::string("prepared copy is ") + quant_mode_name(prepared->mode()) + ", the weight says " +
           quant_mode_name(mode));
    }
    if (prepared->bits() != bits || prepared->group_size() != group_size) {
      fail("prepared copy is " + std::to_string(prepared->bits()) + "-bit with group size " +
           std::to_string(prepared->group_size()) + ", the weight says " + std::to_string(bits) +
           "-bit with group size " + std::to_string(group_size));
    }
    return;
  }
  if (!is_supported_quantization(bits, group_size, mode)) {
    fail(std::string("unsupported ") + quant_mode_name(mode) + " quantization bits=" + std::to_string(bits) +
         " group_size=" + std::to_string(group_size) + " (" + supported_quantization_text(mode) + ")");
  }
  const bool affine = mode == QuantMode::affine;
  if (!w.defined() || !scales.defined()) fail("missing weight or scales");
  if (affine != biases.defined()) {
    fail(affine ? "missing biases" : std::string(quant_mode_name(mode)) + " weights have no biases");
  }
  // Stand-in for the checks below when the mode has no biases.
  const Tensor& b = affine ? biases : scales;
  if (w.dtype() != Dtype::u32) fail("packed weight must be u32, got " + std::string(dtype_name(w.dtype())));
  if (w.ndim() != 2 || scales.ndim() != 2 || b.ndim() != 2) {
    fail("weight, scales and biases must be 2-D, got " + shape_str(w.shape()) + ", " +
         shape_str(scales.shape()) + ", " + shape_str(b.shape()));
  }
  if (affine && (!is_floating(scales.dtype()) || scales.dtype() != biases.dtype())) {
    fail("scales and biases must share one float dtype");
  }
  if (!affine && scales.dtype() != Dtype::u8) {
    fail(std::string(quant_mode_name(mode)) + " scales must be u8 codes, got " + std::string(dtype_name(scales.dtype())));
  }
  if ((w.dim(1) * 32) % bits != 0) {
    fail("packed width " + std::to_string(w.dim(1)) + " words does not hold whole " +
         std::to_string(bits) + "-bit values");
  }
  int64_t in = in_features();
  if (in % group_size != 0) {
    fail("input dimension " + std::to_string(in) + " is not a multiple of the group size " +
         std::to_string(group_size));
  }
  Shape want{w.dim(0), in / group_size};
  if (scales.shape() != want || b.shape() != want) {
    fail("scales " + shape_str(scales.shape()) + " / biases " + shape_str(b.shape()) +
         " do not match " + shape_str(want) + " for weight " + shape_str(w.shape()));
  }
  if (w.strides()[1] != 1 || scales.strides()[1] != 1 || b.strides()[1] != 1 ||
      scales.strides() != b.strides()) {
    fail("rows must be contiguous");
  }
  if (scales.device() != w.device() || b.device() != w.device()) {
    fail("weight on " + w.device().str() + ", scales on " + scales.device().str() + ", biases on " +
         b.device().str());
  }
}

void QuantizedWeight::prepare() {
  if (prepared && !w.defined()) return;
  validate("prepare");
  if (!prepared) prepared = backend_for(w.device()).prepare_quantized(view());
  w = Tensor();
  scales = Tensor();
  biases = Tensor();
}

QuantizedWeight QuantizedWeight::mlx_layout() const {
  validate("mlx_layout");
  if (has_mlx_tensors()) return *this;
  QuantizedWeight q = *this;
  const int64_t n = out_features(), k = in_features();
  const Device device = prepared->device();
  q.w = Tensor::empty({n, k * bits / 32}, Dtype::u32, device);
  q.scales = Tensor::empty({n, k / group_size}, scale_dtype(), device);
  void* biases_out = nullptr;
  if (mode == QuantMode::affine) {
    q.biases = Tensor::empty({n, k / group_size}, scale_dtype(), device);
    biases_out = q.biases.raw_data();
  }
  backend_for(device).unpack_prepared(*prepared, q.w.data<uint32_t>(), q.scales.raw_data(), biases_out);
  return q;
}

Tensor QuantizedWeight::dequantize() const {
  validate("dequantize");
  Tensor out = Tensor::empty({out_features(), in_features()}, Dtype::f32, device());
  if (out.numel() > 0) dequantize_into(*this, 0, out_features(), out.data<float>());
  return out;
}

Tensor QuantizedWeight::dequantize_rows(const Tensor& row_ids) const {
  validate("dequantize_rows");
  Shape shape = row_ids.shape();
  shape.push_back(in_features());
  Tensor out = Tensor::empty(shape, Dtype::f32, device());
  GraphBackend* graphs = graph_backend_for(device());
  auto gather = [&](const Tensor& device_ids) {  // one launch for all the rows
    if (out.numel() == 0) return;
    if (has_mlx_tensors())
      graphs->dequantize_gather(view(), device_ids.data<int64_t>(), device_ids.numel(), out.data<float>(),
                                in_features());
    else
      graphs->dequantize_prepared_gather(*prepared, device_ids.data<int64_t>(), device_ids.numel(), out.data<float>(),
                                         in_features());
  };
  if (graphs && step_values(device()) && row_ids.device() == device() && row_ids.dtype() == Dtype::i64 &&
      row_ids.is_contiguous()) {
    // A captured decode step (as ops::take): the ids were checked before they went to the
    // device, and reading them back would wait for it.
    gather(row_ids);
    return out;
  }
  std::vector<int64_t> ids = row_ids.to_int_vector();
  const int64_t n = out_features();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= n) {
      throw InvalidArgument("embedding: token id " + std::to_string(ids[i]) + " at position " +
                            std::to_string(i) + " is out of range [0, " + std::to_string(n) + ")");
    }
  }
  if (graphs && ids.size() > 1) {  // a prompt's rows on a device: the checked ids go there once
    gather(Tensor::from_vector(ids, {static_cast<int64_t>(ids.size())}).to(device()));
    return out;
  }
  for (size_t i = 0; i < ids.size(); ++i)
    dequantize_into(*this, ids[i], ids[i] + 1, out.data<float>() + static_cast<int64_t>(i) * in_features());
  return out;
}

QuantizedWeight QuantizedWeight::quantize(const Tensor& weight, int bits, int group_size,
                                          Dtype scale_dtype, QuantMode mode) {
  if (!is_supported_quantization(bits, group_size, mode)) {
    throw InvalidArgument(std::string("quantize: unsupported ") + quant_mode_name(mode) +
                          " bits=" + std::to_string(bits) + " group_size=" + std::to_string(group_size) +
                          " (" + supported_quantization_text(mode) + ")");
  }
  if (weight.ndim() != 2) {
    throw ShapeError("quantize: weight must be 2-D, got " + shape_str(weight.shape()));
  }
  const int64_t n = weight.dim(0), k = weight.dim(1);
  if (k % group_size != 0) {
    throw ShapeError("quantize: input dimension " + std::to_string(k) +
                     " is not a multiple of the group size " + std::to_string(group_size));
  }
  if (!is_floating(scale_dtype)) throw InvalidArgument("quantize: scale dtype must be floating");
  Tensor wf = weight.to(Dtype::f32).contiguous();
  const Device device = weight.device();
  QuantizedWeight q;
  q.bits = bits;
  q.group_size = group_size;
  q.mode = mode;
  q.w = Tensor::empty({n, k * bits / 32}, Dtype::u32, device);
  if (mode != QuantMode::affine) {
    q.scales = Tensor::empty({n, k / group_size}, Dtype::u8, device);
    if (n > 0 && k > 0) {
      backend_for(device).quantize_fp(wf.data<float>(), n, k, mode, q.w.data<uint32_t>(),
                                      q.scales.data<uint8_t>());
    }
    return q;
  }
  q.scales = Tensor::empty({n, k / group_size}, scale_dtype, device);
  q.biases = Tensor::empty({n, k / group_size}, scale_dtype, device);
  if (n > 0 && k > 0) {
    backend_for(device).quantize_affine(wf.data<float>(), n, k, bits, group_size, q.w.data<uint32_t>(),
                                        q.scales.raw_data(), q.biases.raw_data(), scale_dtype);
  }
  return q;
}

}  // namespace lmx
