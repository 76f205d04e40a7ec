// A weight matrix in MLX's affine quantized layout, loaded as stored by
// mlx-community checkpoints (no conversion): w = scale * q + bias per group of
// `group_size` inputs, q packed into uint32 words along the input dimension.
#pragma once

#include <memory>
#include <string>

#include "lmx/core/tensor.h"

namespace lmx {

namespace cpu {
class PackedQuantWeight;
}

enum class QuantMode : unsigned char { affine };

struct QuantizedWeight {
  Tensor w;        // u32 [out, in * bits / 32]
  Tensor scales;   // [out, in / group_size], f32 / f16 / bf16
  Tensor biases;   // [out, in / group_size], same dtype as scales
  int bits = 4;
  int group_size = 64;
  QuantMode mode = QuantMode::affine;
  // Load-time repacked copy for the fast CPU kernels (null until prepare_for_cpu()).
  std::shared_ptr<const cpu::PackedQuantWeight> packed;

  int64_t out_features() const { return w.dim(0); }
  int64_t in_features() const { return w.dim(1) * 32 / bits; }

  // Throws FormatError naming `name` when shapes, dtypes, bits or group size do not
  // describe a valid MLX quantized matrix.
  void validate(const std::string& name) const;
  // Builds the repacked layout used by the fast kernels (keeps the original tensors).
  void prepare_for_cpu();
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
