// A weight matrix in MLX's affine quantized layout, loaded as stored by
// mlx-community checkpoints (no conversion): w = scale * q + bias per group of
// `group_size` inputs, q packed into uint32 words along the input dimension.
// prepare_for_cpu() repacks it for the fast kernels and then keeps only the packed copy:
// shapes, dequantization and the MLX tensors themselves (mlx_layout(), for saving) are
// all recovered from it exactly.
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
  // The MLX tensors; undefined once prepare_for_cpu() has packed them.
  Tensor w;        // u32 [out, in * bits / 32]
  Tensor scales;   // [out, in / group_size], f32 / f16 / bf16
  Tensor biases;   // [out, in / group_size], same dtype as scales
  int bits = 4;
  int group_size = 64;
  QuantMode mode = QuantMode::affine;
  // Load-time repacked copy for the fast CPU kernels (null until prepare_for_cpu()).
  std::shared_ptr<const cpu::PackedQuantWeight> packed;

  int64_t out_features() const;
  int64_t in_features() const;
  Dtype scale_dtype() const;
  // True while w, scales and biases are held (before packing, or never packed).
  bool has_mlx_tensors() const { return w.defined(); }

  // Throws FormatError naming `name` when shapes, dtypes, bits or group size do not
  // describe a valid MLX quantized matrix (or a packed one, once the tensors are released).
  void validate(const std::string& name) const;
  // Builds the repacked layout used by the fast kernels, then releases w, scales and biases
  // (their memory, or their pages of a mapped checkpoint, go back), so the weight is held
  // once. No-op when already packed.
  void prepare_for_cpu();
  // This weight with w, scales and biases defined: the held tensors, or new ones unpacked
  // from the packed copy (bit for bit what was loaded). Shares `packed`.
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
