#include "lmx/models/ternary_weights.h"

#include <cmath>

#include "lmx/base/error.h"
#include "lmx/models/config_reader.h"

namespace lmx::models {

TernarySettings read_ternary(const nlohmann::json& config, const std::string& source) {
  TernarySettings t;
  auto it = config.find("quantization_config");
  if (it == config.end() || !it->is_object()) return t;
  ConfigReader r(*it, source + ": quantization_config");
  if (r.get_string("quant_method", "") != "bitnet") return t;
  t.present = true;
  const std::string linear_class = r.get_string("linear_class", "bitlinear");
  if (linear_class != "bitlinear" && linear_class != "autobitlinear") {
    r.fail("linear_class", "is '" + linear_class + "' (expected 'bitlinear' or 'autobitlinear')");
  }
  t.multiply = linear_class == "autobitlinear";
  if (t.multiply && r.get_string("quantization_mode", "offline") == "online") {
    throw Unsupported(source + ": quantization_config: autobitlinear quantization_mode 'online' (float weights "
                               "made ternary at run time) is not supported; lmx loads packed ternary weights "
                               "('offline')");
  }
  if (r.get_bool("use_rms_norm", false)) {
    throw Unsupported(source + ": quantization_config: use_rms_norm (an RMSNorm inside each BitLinear) is not "
                               "supported");
  }
  return t;
}

int repack_ternary(WeightDict& weights, const std::string& path, int64_t out, int64_t in,
                   const TernarySettings& t) {
  const std::string wname = path + ".weight", sname = path + ".weight_scale";
  auto wit = weights.find(wname);
  auto sit = weights.find(sname);
  if (wit == weights.end()) throw FormatError("missing '" + wname + "' (packed ternary u8)");
  const int64_t rows = (out + 3) / 4;
  const Tensor packed = wit->second.contiguous();
  if (packed.dtype() != Dtype::u8 || packed.shape() != Shape{rows, in}) {
    throw FormatError("'" + wname + "' is " + std::string(dtype_name(packed.dtype())) + " " + shape_str(packed.shape()) +
                      ", expected packed ternary u8 " + shape_str({rows, in}) + " (4 values a byte along the " +
                      std::to_string(out) + " outputs)");
  }
  if (sit == weights.end()) throw FormatError("missing '" + sname + "' beside packed '" + wname + "'");
  const Tensor& ws = sit->second;
  if (!is_floating(ws.dtype()) || ws.numel() != 1) {
    throw FormatError("'" + sname + "' is " + std::string(dtype_name(ws.dtype())) + " " + shape_str(ws.shape()) +
                      ", expected one float");
  }
  const float stored = ws.to(Device::cpu()).item<float>();
  if (!std::isfinite(stored) || stored == 0.0f) {
    throw FormatError("'" + sname + "' is " + std::to_string(stored) + ", expected a finite nonzero scale");
  }
  int group = 0;
  for (int g : {128, 64, 32}) {
    if (in % g == 0) {
      group = g;
      break;
    }
  }
  if (group == 0) {
    throw FormatError("'" + wname + "': the input dimension " + std::to_string(in) +
                      " is not a multiple of 32 (lmx runs ternary weights as 2-bit groups of 32, 64 or 128)");
  }
  // MLX affine 2-bit: element j of a row at bits 2 (j % 16) of word j / 16, lowest first.
  Tensor q = Tensor::zeros({out, in / 16}, Dtype::u32);
  const uint8_t* src = packed.to(Device::cpu()).data<uint8_t>();
  uint32_t* dst = q.data<uint32_t>();
  for (int64_t o = 0; o < out; ++o) {
    const int64_t field = o / rows, r = o % rows;
    const uint8_t* row = src + r * in;
    uint32_t* words = dst + o * (in / 16);
    for (int64_t j = 0; j < in; ++j) {
      const uint32_t code = (row[j] >> (2 * field)) & 3u;
      if (code == 3) {
        throw FormatError("'" + wname + "' holds the code 3 (not -1, 0 or 1) for output " + std::to_string(o) +
                          ", input " + std::to_string(j));
      }
      words[j / 16] |= code << (2 * (j % 16));
    }
  }
  const float scale = t.multiply ? stored : 1.0f / stored;
  weights.erase(wit);
  weights.erase(sit);
  weights[wname] = q;
  weights[path + ".scales"] = Tensor::full({out, in / group}, scale, Dtype::f32);
  weights[path + ".biases"] = Tensor::full({out, in / group}, -static_cast<double>(scale), Dtype::f32);
  return group;
}

PackedTernary pack_ternary(const QuantizedWeight& q, const std::string& name) {
  const auto fail = [&](const std::string& why) -> void {
    throw InvalidArgument("'" + name + "' is not a ternary layer: " + why);
  };
  if (q.mode != QuantMode::affine || q.bits != 2) fail("not 2-bit affine");
  const int64_t out = q.out_features(), in = q.in_features(), rows = (out + 3) / 4;
  const std::vector<float> scales = q.scales.to(Device::cpu()).to_float_vector();
  const std::vector<float> biases = q.biases.to(Device::cpu()).to_float_vector();
  const float scale = scales.empty() ? 0.0f : scales[0];
  for (size_t i = 0; i < scales.size(); ++i) {
    if (scales[i] != scale || biases[i] != -scale) fail("scales and biases are not one s and -s");
  }
  Tensor packed = Tensor::zeros({rows, in}, Dtype::u8);
  const Tensor words = q.w.to(Device::cpu()).contiguous();
  const uint32_t* src = words.data<uint32_t>();
  uint8_t* dst = packed.data<uint8_t>();
  for (int64_t o = 0; o < out; ++o) {
    const uint32_t* row = src + o * (in / 16);
    uint8_t* bytes = dst + (o % rows) * in;
    for (int64_t j = 0; j < in; ++j) {
      const uint32_t code = (row[j / 16] >> (2 * (j % 16))) & 3u;
      if (code == 3) fail("code 3");
      bytes[j] |= static_cast<uint8_t>(code << (2 * (o / rows)));
    }
  }
  return {packed, Tensor::full({1}, scale, Dtype::f32)};
}

void set_packed_ternary_config(nlohmann::ordered_json& config) {
  config["quantization_config"]["linear_class"] = "autobitlinear";
  config["quantization_config"]["quantization_mode"] = "offline";
}

}  // namespace lmx::models
