#include "lmx/nn/linear.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "lmx/base/env_switch.h"
#include "lmx/base/error.h"
#include "lmx/core/backend.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/index.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/ops/reduce.h"

namespace lmx::nn {

std::vector<WeightMatrix::Slot> WeightMatrix::slots() {
  if (!quantized_) return {{"weight", &dense_, {rows_, cols_}, false}};
  const int64_t groups = cols_ / quant_.group_size;
  if (quant_.mode != QuantMode::affine) {  // u8 scale codes, no biases
    return {{"weight", &quant_.w, {rows_, cols_ * quant_.bits / 32}, true},
            {"scales", &quant_.scales, {rows_, groups}, true}};
  }
  return {{"weight", &quant_.w, {rows_, cols_ * quant_.bits / 32}, true},
          {"scales", &quant_.scales, {rows_, groups}, false},
          {"biases", &quant_.biases, {rows_, groups}, false}};
}

void WeightMatrix::set_quantized(int bits, int group_size, QuantMode mode) {
  if (!is_supported_quantization(bits, group_size, mode)) {
    throw FormatError(std::string("unsupported ") + quant_mode_name(mode) + " quantization bits=" +
                      std::to_string(bits) + " group_size=" + std::to_string(group_size) + " (" +
                      supported_quantization_text(mode) + ")");
  }
  if (cols_ % group_size != 0) {
    throw FormatError("quantization group size " + std::to_string(group_size) +
                      " does not divide the input dimension " + std::to_string(cols_));
  }
  quantized_ = true;
  quant_ = QuantizedWeight{};
  quant_.bits = bits;
  quant_.group_size = group_size;
  quant_.mode = mode;
  dense_ = Tensor();
}

void WeightMatrix::quantize_loaded(int bits, int group_size, Dtype scale_dtype, QuantMode mode) {
  if (quantized_) return;
  if (!dense_.defined()) throw InvalidArgument("quantize: weight is not loaded");
  quant_ = QuantizedWeight::quantize(dense_, bits, group_size, scale_dtype, mode);
  quantized_ = true;
  dense_ = Tensor();
}

void WeightMatrix::set_dense(Tensor weight) {
  if (weight.shape() != Shape{rows_, cols_}) {
    throw ShapeError("weight: " + shape_str(weight.shape()) + " for a [" + std::to_string(rows_) + ", " +
                     std::to_string(cols_) + "] matrix");
  }
  quantized_ = false;
  quant_ = QuantizedWeight{};
  dense_ = std::move(weight);
}

void WeightMatrix::dequantize_loaded() {
  if (!quantized_) return;
  // The floating-point modes' values (at most 6 significant bits, f32's exponent range)
  // are exact in bf16.
  const Dtype dtype = quant_.mode == QuantMode::affine ? quant_.scale_dtype() : Dtype::bf16;
  Tensor w = quant_.dequantize();
  set_dense(dtype == Dtype::f32 ? w : w.to(dtype));
}

Tensor WeightMatrix::matmul_t(const Tensor& x, const Tensor& bias) const {
  if (quantized_) return ops::quantized_linear(x, quant_, bias);
  return ops::linear(x, dense_, bias);
}

Tensor WeightMatrix::rows_at(const Tensor& ids) const {
  if (quantized_) return quant_.dequantize_rows(ids);
  // Token ids come from the host; the table may live on a device. take() reads the ids
  // on the host to check them and copies them to the table's device once: moving them
  // first would cost two more round trips that wait for the device.
  Tensor rows = ops::embedding(dense_, ids);
  return rows.dtype() == Dtype::f32 ? rows : rows.to(Dtype::f32);
}

size_t WeightMatrix::prepared_bytes() const {
  return quantized_ && quant_.prepared ? quant_.prepared->bytes() : 0;
}

void WeightMatrix::prepare() {
  if (quantized_ && !quant_.prepared) quant_.prepare();
}

Tensor lora_delta(const LoraWeights& lora, const Tensor& x) {
  return ops::mul(ops::matmul(ops::matmul(x, lora.a), lora.b), static_cast<double>(lora.scale));
}

namespace {

// BitLinear's per-row int8 rounding of its input (Linear::set_int8_activations) from
// element-wise ops, so it runs on every backend. The scale is 127 / max|x| computed as a
// division, as transformers does, and rounding is half to even (torch.round): adding and
// subtracting 1.5 * 2^23 rounds an f32 of magnitude below 2^22 to an integer that way.
Tensor int8_rounded(const Tensor& x) {
  Tensor amax = ops::clamp(ops::max(ops::abs(x), -1, true), 1e-5, INFINITY);
  Tensor scale = ops::div(Tensor::full({}, 127.0, Dtype::f32, x.device()), amax);
  constexpr double kRound = 12582912.0;  // 1.5 * 2^23
  Tensor q = ops::sub(ops::add(ops::mul(x, scale), kRound), kRound);
  return ops::div(ops::clamp(q, -128.0, 127.0), scale);
}

}  // namespace

Tensor Linear::forward(const Tensor& in) const {
  const Tensor x = int8_activations_ ? int8_rounded(in) : in;
  if (!lora_) return w_.matmul_t(x, bias_);
  if (!lora_->magnitude_scale.defined()) return ops::add(w_.matmul_t(x, bias_), lora_delta(*lora_, x));
  Tensor y = ops::mul(ops::add(w_.matmul_t(x, Tensor()), lora_delta(*lora_, x)), lora_->magnitude_scale);
  return has_bias_ ? ops::add(y, bias_.dtype() == Dtype::f32 ? bias_ : bias_.to(Dtype::f32)) : y;
}

Linear::Linear(int64_t in, int64_t out, bool bias) : w_(out, in), has_bias_(bias) { register_all(); }

void Linear::register_all() {
  clear_parameters();
  for (auto& s : w_.slots()) register_parameter(s.name, *s.tensor, s.shape, s.integer);
  if (has_bias_) register_parameter("bias", bias_, {w_.rows()});
}

void Linear::quantize_for_load(int bits, int group_size, QuantMode mode) {
  w_.set_quantized(bits, group_size, mode);
  register_all();
}

void Linear::quantize(int bits, int group_size, Dtype scale_dtype, QuantMode mode) {
  w_.quantize_loaded(bits, group_size, scale_dtype, mode);
  register_all();
}

void Linear::set_dense_weight(Tensor weight) {
  w_.set_dense(std::move(weight));
  register_all();
}

void Linear::dequantize() {
  w_.dequantize_loaded();
  register_all();
}

// Dense weights of a decode step go to ops::linears: the CPU runs them one by one (one
// region for Llama-3.2-1B bf16 measured 5% slower), CUDA in one launch.
namespace {

// The layers over an input whose step runs inside them (ops::linears_with_prologue); nullopt
// where they or the backend cannot.
std::optional<std::vector<Tensor>> linears_with_prologue(const ops::LinearInput& in,
                                                         std::span<const Linear* const> layers) {
  std::vector<const Tensor*> dense;
  std::vector<const QuantizedWeight*> quantized;
  std::vector<Tensor> biases;
  for (const Linear* l : layers) {
    if (l->lora() || l->int8_activations()) return std::nullopt;
    if (l->weight().quantized()) {
      quantized.push_back(&l->weight().quant());
    } else {
      dense.push_back(&l->weight().dense());
    }
    biases.push_back(l->has_bias() ? l->bias() : Tensor());
  }
  if (!dense.empty() && !quantized.empty()) return std::nullopt;
  return ops::linears_with_prologue(in, dense, quantized, biases);
}

}  // namespace

Tensor Linear::forward(const ops::LinearInput& in) const {
  if (!in.deferred()) return forward(in.value());
  const Linear* self[1] = {this};
  return forward_shared_input(in, self).front();
}

std::vector<Tensor> forward_shared_input(const ops::LinearInput& in, std::span<const Linear* const> layers) {
  if (in.deferred()) {
    if (auto outs = linears_with_prologue(in, layers)) return std::move(*outs);
  }
  const Tensor& x = in.value();
  const int64_t rows = x.ndim() == 0 || x.dim(-1) == 0 ? 0 : x.numel() / x.dim(-1);
  bool quantized = rows > 0 && rows < 4;
  // Dense layers of a prefill share x off the CPU too (CUDA rounds it to bf16 once for all).
  bool dense = rows > 0 && (rows < 4 || (!x.device().is_cpu() && cuda_prefill_fused()));
  for (const Linear* l : layers) {
    quantized = quantized && l->weight().quantized() && l->weight().quant().prepared && !l->lora();
    dense = dense && !l->weight().quantized() && !l->lora();
  }
  std::vector<Tensor> outs;
  // BitNet layers round their input to 8 bits: once here when they all do and run together.
  auto rounds = [](const Linear* l) { return l->int8_activations(); };
  const bool int8 = std::any_of(layers.begin(), layers.end(), rounds);
  if (int8 && (!std::all_of(layers.begin(), layers.end(), rounds) || !(dense || quantized))) {
    for (const Linear* l : layers) outs.push_back(l->forward(x));
    return outs;
  }
  const Tensor xin = int8 ? int8_rounded(x) : x;
  if (dense) {
    std::vector<const Tensor*> weights;
    std::vector<Tensor> biases;
    for (const Linear* l : layers) {
      weights.push_back(&l->weight().dense());
      biases.push_back(l->has_bias() ? l->bias() : Tensor());
    }
    return ops::linears(xin, weights, biases);
  }
  if (!quantized) {
    for (const Linear* l : layers) outs.push_back(l->forward(x));
    return outs;
  }
  std::vector<const QuantizedWeight*> weights;
  std::vector<Tensor> biases;
  for (const Linear* l : layers) {
    weights.push_back(&l->weight().quant());
    biases.push_back(l->has_bias() ? l->bias() : Tensor());
  }
  return ops::quantized_linears(xin, weights, biases);
}

Embedding::Embedding(int64_t vocab, int64_t dim) : w_(vocab, dim) { register_all(); }

void Embedding::register_all() {
  clear_parameters();
  for (auto& s : w_.slots()) register_parameter(s.name, *s.tensor, s.shape, s.integer);
}

void Embedding::quantize_for_load(int bits, int group_size, QuantMode mode) {
  w_.set_quantized(bits, group_size, mode);
  register_all();
}

void Embedding::quantize(int bits, int group_size, Dtype scale_dtype, QuantMode mode) {
  w_.quantize_loaded(bits, group_size, scale_dtype, mode);
  register_all();
}

void Embedding::dequantize() {
  w_.dequantize_loaded();
  register_all();
}

}  // namespace lmx::nn
