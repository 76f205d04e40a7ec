// BitNet b1.58's packed ternary checkpoints: config.json "quantization_config":
// {"quant_method": "bitnet", "linear_class", "quantization_mode"}, as transformers
// (integrations/bitnet.py) and mlx-lm (bitlinear_layers.py) store them, one layout for
// both. Each BitLinear holds `weight` u8 [ceil(out / 4), in]: the 2-bit field k (bits 2k,
// 2k + 1) of packed row r is the ternary value + 1 of output row k * ceil(out / 4) + r;
// and a one-element `weight_scale`: the output is divided by it (linear_class
// "bitlinear", transformers' default) or multiplied by it ("autobitlinear", as
// microsoft/bitnet-b1.58-2B-4T ships). The other modules (embeddings, norms, lm_head) are
// plain float.
//
// lmx repacks each BitLinear at load into an MLX affine 2-bit weight (codes 0, 1, 2 with
// scale s and bias -s: exactly s * {-1, 0, 1}, f32 scales), so the quantized kernels of
// every backend run it at 2 bits a weight plus a scale and bias per group, and turns on
// the layer's per-token int8 activation rounding (nn::Linear::set_int8_activations), as
// transformers' BitLinear and AutoBitLinear compute (mlx-lm's BitLinear skips it).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "lmx/core/quantized_weight.h"
#include "lmx/models/language_model.h"

namespace lmx::models {

struct TernarySettings {
  bool present = false;   // quant_method "bitnet"
  bool multiply = false;  // autobitlinear: output * weight_scale (else / weight_scale)
};

// Reads config's quantization_config; Unsupported for the variants lmx does not run
// (AutoBitLinear's "online" mode with float weights, use_rms_norm), InvalidArgument for
// an unknown linear_class.
TernarySettings read_ternary(const nlohmann::json& config, const std::string& source);

// Replaces `path`.weight (packed u8) and `path`.weight_scale in `weights` by the MLX affine
// 2-bit `path`.weight / .scales / .biases of a [out, in] linear layer; returns the group
// size used (128, 64 or 32: the largest dividing `in`). FormatError naming the tensor when
// it is missing, of another dtype or shape, or holds the unused code 3.
int repack_ternary(WeightDict& weights, const std::string& path, int64_t out, int64_t in,
                   const TernarySettings& t);

// The inverse for saving (lmx convert): a repacked layer's MLX affine 2-bit tensors `q`
// back to the packed u8 weight and a one-element f32 weight_scale that multiplies
// (linear_class "autobitlinear", exact for either source class). InvalidArgument when q
// is not one scale s and bias -s over codes 0, 1, 2.
struct PackedTernary {
  Tensor weight, weight_scale;
};
PackedTernary pack_ternary(const QuantizedWeight& q, const std::string& name);

// A bitnet config as convert writes it beside pack_ternary's tensors.
void set_packed_ternary_config(nlohmann::ordered_json& config);

}  // namespace lmx::models
