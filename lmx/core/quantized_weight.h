// A weight matrix in MLX's affine quantized layout, loaded as stored by
// mlx-community checkpoints (no conversion): w = scale * q + bias per group of
// `group_size` inputs, q packed into uint32 words along the input dimension.
// prepare() hands it to the backend of its device, which makes its own layout for its
// kernels (the CPU repacks rows); then only that copy is kept: shapes, dequantization and
// the MLX tensors themselves (mlx_layout(), for saving) are all recovered from it exactly.
#pragma once

#include <memory>
#include <string>

#include "lmx/core/kernel_args.h"
#include "lmx/core/tensor.h"

namespace lmx {

class PreparedWeight;

enum class QuantMode : unsigned char { affine };

struct QuantizedWeight {
  // The MLX tensors; undefined once prepare() has made the backend's layout.
  Tensor w;        // u32 [out, in * bits / 32]
  Tensor scales;   // [out, in / group_size], f32 / f16 / bf16
  Tensor biases;   // [out, in / group_size], same dtype as scales
  int bits = 4;
  int group_size = 64;
  QuantMode mode = QuantMode::affine;
  // The backend's own layout, made at load time (null until prepare()).
  std::shared_ptr<const PreparedWeight> prepared;

  int64_t out_features() const;
  int64_t in_features() const;
  Dtype scale_dtype() const;
  // True while w, scales and biases are held (before prepare(), or never prepared).
  bool has_mlx_tensors() const { return w.defined(); }
  // Where the weight lives (of the prepared copy, or of w).
  Device device() const;
  // The MLX tensors as kernel arguments (has_mlx_tensors() must hold).
  kernels::QuantView view() const;

  // Throws FormatError naming `name` when shapes, dtypes, bits or group size do not
  // describe a valid MLX quantized matrix (or a prepared one, once the tensors are released).
  void validate(const std::string& name) const;
  // Makes the layout of the backend of the weight's device, then releases w, scales and
  // biases (their memory, or their pages of a mapped checkpoint, go back), so the weight is
  // held once. No-op when already prepared.
  void prepare();
  // This weight with w, scales and biases defined: the held tensors, or new
  // ones unpacked from the prepared copy (bit for bit what was loaded). Shares `prepared`.
  QuantizedWeight mlx_layout() const;
  // The full-precision matrix [out, in] in f32.
  Tensor dequantize() const;
  // Rows [begin, end) dequantized to f32 [end - begin, in] (quantized embeddings).
  Tensor dequantize_rows(const Tensor& row_ids) const;

  // Quantizes a [out, in] float matrix as mlx.core.quantize does.
  static QuantizedWeight quantize(const Tensor& weight, int bits, int group_size,
                                  Dtype scale_dtype = Dtype::bf16);
};

// bits in {2, 3, 4, 5, 6, 8}; group_size in {32, 64, 128}.
bool is_supported_quantization(int bits, int group_size);

}  // namespace lmx
