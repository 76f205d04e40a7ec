// A weight matrix in MLX's quantized layout, loaded as stored by mlx-community
// checkpoints (no conversion): q packed into uint32 words along the input dimension,
// lowest bits first, one scale per group of `group_size` inputs. affine: w = scale * q +
// bias; mxfp4 / mxfp8 / nvfp4: w = scale * fp(q) with q an e2m1 / e4m3 float code and the
// scale a u8 code (e8m0, or e4m3 for nvfp4), no biases (see QuantMode).
// prepare() hands it to the backend of its device, which makes its own layout for its
// kernels (the CPU repacks rows); then only that copy is kept: shapes, dequantization and
// the MLX tensors themselves (mlx_layout(), for saving) are all recovered from it exactly.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "lmx/core/kernel_args.h"
#include "lmx/core/tensor.h"

namespace lmx {

class PreparedWeight;

// "affine", "mxfp4", "mxfp8", "nvfp4" (MLX's spelling of the `mode`).
const char* quant_mode_name(QuantMode mode);
// The mode named `name`; InvalidArgument listing the modes otherwise (`what` names the
// field or option, e.g. "config.json: quantization.mode").
QuantMode parse_quant_mode(const std::string& name, const std::string& what);
// MLX's defaults for a mode: {group_size, bits} (affine 64 / 4, mxfp4 32 / 4, mxfp8 32 / 8,
// nvfp4 16 / 4).
std::pair<int, int> default_group_size_and_bits(QuantMode mode);

struct QuantizedWeight {
  // The MLX tensors; undefined once prepare() has made the backend's layout.
  Tensor w;        // u32 [out, in * bits / 32]
  Tensor scales;   // [out, in / group_size], f32 / f16 / bf16 (u8 codes unless affine)
  Tensor biases;   // [out, in / group_size], same dtype as scales (undefined unless affine)
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

  // Quantizes a [out, in] float matrix as mlx.core.quantize does (scale_dtype is that of
  // affine scales and biases; the floating-point modes store u8 scales).
  static QuantizedWeight quantize(const Tensor& weight, int bits, int group_size,
                                  Dtype scale_dtype = Dtype::bf16,
                                  QuantMode mode = QuantMode::affine);
};

// affine: bits in {2, 3, 4, 5, 6, 8}, group_size in {32, 64, 128}; the floating-point
// modes: exactly their bits and group size (default_group_size_and_bits).
bool is_supported_quantization(int bits, int group_size, QuantMode mode = QuantMode::affine);
// "bits 2, 3, 4, 5, 6, 8; group sizes 32, 64, 128" or "mxfp4 needs bits 4, group size 32":
// what is_supported_quantization accepts, for error messages.
std::string supported_quantization_text(QuantMode mode);

}  // namespace lmx
