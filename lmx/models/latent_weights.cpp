#include "lmx/models/latent_weights.h"

#include <vector>

#include "lmx/base/error.h"
#include "lmx/core/ops/shape.h"
#include "lmx/core/quantized_weight.h"

namespace lmx::models {
namespace {

// "<name>.weight" [heads, rows, in] as f32, dequantizing per head when "<name>.scales" exists.
Tensor take_multilinear(WeightDict& weights, const std::string& name, int64_t heads, int64_t rows, int64_t in) {
  auto take = [&](const std::string& key) {
    auto it = weights.find(key);
    if (it == weights.end()) throw FormatError("missing '" + key + "'");
    Tensor t = it->second;
    weights.erase(it);
    return t;
  };
  Tensor w = take(name + ".weight");
  if (!weights.count(name + ".scales")) {
    if (w.shape() != Shape{heads, rows, in}) {
      throw FormatError("'" + name + ".weight' is " + shape_str(w.shape()) + ", expected " +
                        shape_str(Shape{heads, rows, in}));
    }
    return w.to(Dtype::f32);
  }
  Tensor scales = take(name + ".scales"), biases = take(name + ".biases");
  if (w.ndim() != 3 || w.dim(0) != heads || w.dim(1) != rows || scales.ndim() != 3 || scales.dim(2) <= 0 ||
      (w.dim(2) * 32) % in != 0 || in % scales.dim(2) != 0) {
    throw FormatError("'" + name + ".weight' " + shape_str(w.shape()) + " / scales " + shape_str(scales.shape()) +
                      " do not describe a quantized [" + std::to_string(heads) + ", " + std::to_string(rows) +
                      ", " + std::to_string(in) + "]");
  }
  std::vector<Tensor> parts;
  for (int64_t h = 0; h < heads; ++h) {
    QuantizedWeight q;
    q.w = w.select(0, h).contiguous();
    q.scales = scales.select(0, h).contiguous();
    q.biases = biases.select(0, h).contiguous();
    q.bits = static_cast<int>(w.dim(2) * 32 / in);
    q.group_size = static_cast<int>(in / scales.dim(2));
    q.validate(name);
    parts.push_back(q.dequantize().unsqueeze(0));
  }
  return ops::concat(parts, 0);
}

}  // namespace

void merge_latent_projections(WeightDict& weights, const std::string& attn, const nn::MlaOptions& o) {
  if (!weights.count(attn + ".embed_q.weight")) return;
  const int64_t H = o.heads, rank = o.kv_lora_rank, nope = o.qk_nope_head_dim, v = o.v_head_dim;
  Tensor k = take_multilinear(weights, attn + ".embed_q", H, rank, nope).transpose(1, 2);  // [H, nope, rank]
  Tensor vv = take_multilinear(weights, attn + ".unembed_out", H, v, rank);                // [H, v, rank]
  weights[attn + ".kv_b_proj.weight"] = ops::concat({k.contiguous(), vv}, 1).reshape({H * (nope + v), rank});
}

}  // namespace lmx::models
