// Linear and Embedding layers: full precision (f32 / f16 / bf16, as stored) or MLX
// quantized (affine, mxfp4, mxfp8, nvfp4). A layer becomes quantized before loading when the checkpoint holds
// `<path>.scales` (quantize_for_load), or after loading (quantize, for the converter).
#pragma once

#include <span>
#include <vector>

#include <memory>

#include "lmx/core/ops/linear_input.h"
#include "lmx/core/quantized_weight.h"
#include "lmx/nn/lora.h"
#include "lmx/nn/module.h"

namespace lmx::nn {

// Shared by Linear and Embedding: a [rows, cols] matrix that is either dense or quantized.
class WeightMatrix {
 public:
  WeightMatrix(int64_t rows, int64_t cols) : rows_(rows), cols_(cols) {}
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  bool quantized() const { return quantized_; }
  const Tensor& dense() const { return dense_; }
  const QuantizedWeight& quant() const { return quant_; }
  QuantizedWeight& quant() { return quant_; }
  Tensor& dense_slot() { return dense_; }

  struct Slot {
    const char* name;
    Tensor* tensor;
    Shape shape;
    bool integer;
  };
  // "weight" (and "scales", "biases" when quantized) with their expected shapes.
  std::vector<Slot> slots();
  void set_quantized(int bits, int group_size, QuantMode mode = QuantMode::affine);
  // Quantizes the loaded dense weight in place (for convert).
  void quantize_loaded(int bits, int group_size, Dtype scale_dtype, QuantMode mode = QuantMode::affine);
  // Makes the weight dense with these values [rows, cols] (fusing adapters).
  void set_dense(Tensor weight);
  // A quantized weight made dense: f32 for f32 scales, else the scales' dtype.
  void dequantize_loaded();
  // x [..., cols] @ W^T -> [..., rows] (f32).
  Tensor matmul_t(const Tensor& x, const Tensor& bias) const;
  // Rows picked by ids, as f32 [..., cols].
  Tensor rows_at(const Tensor& ids) const;
  // Bytes of the backend's prepared copy (0 when dense or not prepared).
  size_t prepared_bytes() const;
  // Has the backend of the weight's device make its layout of a quantized weight (after
  // loading); only that copy stays (quant().mlx_layout() gives the MLX tensors back, e.g.
  // for saving).
  void prepare();

 private:
  int64_t rows_, cols_;
  bool quantized_ = false;
  Tensor dense_;
  QuantizedWeight quant_;
};

class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, bool bias);
  int64_t in_features() const { return w_.cols(); }
  int64_t out_features() const { return w_.rows(); }
  bool has_bias() const { return has_bias_; }
  // base(x), plus the adapter's delta when one is attached.
  Tensor forward(const Tensor& x) const;
  // x may be a step not yet run (a norm, a gated activation): see forward_shared_input.
  Tensor forward(const ops::LinearInput& x) const;
  Tensor operator()(const Tensor& x) const { return forward(x); }

  // Attaches (or with null removes) a low-rank adapter applied on top of the frozen weight.
  void set_lora(std::shared_ptr<const LoraWeights> lora) { lora_ = std::move(lora); }
  const LoraWeights* lora() const { return lora_.get(); }

  // BitNet's BitLinear: each input row x rounded to 8 bits before the product, as
  // round(x * 127 / max|x|) (clamped to [-128, 127]) * max|x| / 127 with max|x| >= 1e-5
  // (transformers' activation quantization, in f32 like it).
  void set_int8_activations(bool on) { int8_activations_ = on; }
  bool int8_activations() const { return int8_activations_; }

  void quantize_for_load(int bits, int group_size, QuantMode mode = QuantMode::affine);
  void quantize(int bits, int group_size, Dtype scale_dtype, QuantMode mode = QuantMode::affine);
  // Replaces the weight with dense values [out, in] (fusing adapters).
  void set_dense_weight(Tensor weight);
  void dequantize();
  void prepare() { w_.prepare(); }
  const WeightMatrix& weight() const { return w_; }
  WeightMatrix& weight() { return w_; }
  const Tensor& bias() const { return bias_; }

 private:
  void register_all();
  WeightMatrix w_;
  bool has_bias_;
  bool int8_activations_ = false;
  Tensor bias_;
  std::shared_ptr<const LoraWeights> lora_;
};

// layers[i]->forward(x) for each layer, bit for bit, for layers that read the same x
// (q/k/v, gate/up). On decode (< 4 rows) with prepared quantized weights, one parallel region
// covers all of them (ops::quantized_linears); otherwise the layers run one by one. (Dense
// weights run one by one: one region for Llama-3.2-1B bf16 measured 5% slower.) Where x is
// a step not yet run (ops::LinearInput: a norm, a gated activation) and the layers are plain
// (no LoRA, no 8-bit activations; all dense or all prepared quantized), the step runs inside
// them where the backend can (ops::linears_with_prologue: a decode row on the GPU).
std::vector<Tensor> forward_shared_input(const ops::LinearInput& x, std::span<const Linear* const> layers);

class Embedding : public Module {
 public:
  Embedding(int64_t vocab, int64_t dim);
  int64_t vocab_size() const { return w_.rows(); }
  int64_t dim() const { return w_.cols(); }
  // ids [...] -> [..., dim] (f32). Out-of-range ids throw InvalidArgument.
  Tensor forward(const Tensor& ids) const { return w_.rows_at(ids); }
  // x [..., dim] @ table^T: the tied output projection.
  Tensor as_linear(const Tensor& x) const { return w_.matmul_t(x, Tensor()); }

  void quantize_for_load(int bits, int group_size, QuantMode mode = QuantMode::affine);
  void quantize(int bits, int group_size, Dtype scale_dtype, QuantMode mode = QuantMode::affine);
  void dequantize();
  void prepare() { w_.prepare(); }
  const WeightMatrix& weight() const { return w_; }

 private:
  void register_all();
  WeightMatrix w_;
};

}  // namespace lmx::nn
