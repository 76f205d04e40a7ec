#include "lmx/models/expert_weights.h"

#include <utility>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/core/ops/shape.h"

namespace lmx::models {
namespace {

// Per-expert tensors "experts.N.<src>.<suffix>" stacked into "<dst>.<suffix>".
void stack_per_expert(WeightDict& weights, const std::string& base, const nn::MoeOptions& o) {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> kNames = {
      {"gate_proj", {"gate_proj", "w1"}}, {"up_proj", {"up_proj", "w3", "v1"}}, {"down_proj", {"down_proj", "w2"}}};
  for (const auto& [dst, aliases] : kNames) {
    for (const char* suffix : {"weight", "scales", "biases", "bias"}) {
      for (const auto& src : aliases) {
        if (!weights.count(base + ".experts.0." + src + "." + suffix)) continue;
        std::vector<Tensor> parts;
        for (int64_t e = 0; e < o.experts; ++e) {
          const std::string key = base + ".experts." + std::to_string(e) + "." + src + "." + suffix;
          auto it = weights.find(key);
          if (it == weights.end()) throw FormatError("missing expert weight '" + key + "'");
          parts.push_back(it->second.unsqueeze(0));
          weights.erase(it);
        }
        weights[base + "." + o.experts_name + "." + dst + "." + suffix] = ops::concat(parts, 0);
      }
    }
  }
}

// A fused [E, a, b] tensor as [E, out, in]: transposed when it is stored [E, in, out].
Tensor out_in(const Tensor& t, int64_t out, int64_t in, bool assume_in_out, const std::string& key) {
  const bool as_out_in = t.ndim() == 3 && t.dim(1) == out && t.dim(2) == in;
  const bool as_in_out = t.ndim() == 3 && t.dim(1) == in && t.dim(2) == out;
  if (!as_out_in && !as_in_out) {
    throw FormatError("'" + key + "' is " + shape_str(t.shape()) + ", expected [experts, " + std::to_string(out) +
                      ", " + std::to_string(in) + "] or its transpose");
  }
  return as_in_out && (assume_in_out || !as_out_in) ? t.transpose(1, 2) : t;
}

// The gate and up halves (or alternating rows) of a fused [E, 2I, ...] tensor.
std::pair<Tensor, Tensor> split_gate_up(const Tensor& t, int64_t inter, bool interleaved) {
  if (!interleaved) return {t.slice(1, 0, inter).contiguous(), t.slice(1, inter, 2 * inter).contiguous()};
  return {t.slice(1, 0, 2 * inter, 2).contiguous(), t.slice(1, 1, 2 * inter, 2).contiguous()};
}

// u8 bytes [..., n] read as little-endian u32 words [..., n / 4] (no copy when aligned).
Tensor as_words(const Tensor& bytes) {
  const Tensor b = bytes.is_contiguous() && bytes.offset() % 4 == 0 ? bytes : bytes.clone();
  Shape shape = b.shape();
  shape.back() /= 4;
  Shape strides(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * shape[i + 1];
  return Tensor(b.storage(), shape, strides, b.offset() / 4, Dtype::u32);
}

// OpenAI's MXFP4 experts (gpt-oss: quantization_config quant_method "mxfp4"):
// "<proj>_blocks" u8 [E, out, in / 32, 16] (two e2m1 codes a byte, the even element in the
// low nibble) and "<proj>_scales" u8 [E, out, in / 32] (e8m0) are MLX's mxfp4 tensors once
// the bytes of each row are read as u32 words [E, out, in / 8]; the fused gate_up rows
// split as the float tensor's do.
void split_mxfp4_blocks(WeightDict& weights, const std::string& src, const std::string& dst,
                        const nn::MoeOptions& o) {
  struct Proj {
    const char* name;
    int64_t out, in;
  };
  for (const Proj& p : {Proj{"gate_up_proj", 2 * o.intermediate, o.hidden}, Proj{"down_proj", o.hidden, o.intermediate}}) {
    const std::string bkey = src + p.name + "_blocks", skey = src + p.name + "_scales";
    auto bit = weights.find(bkey);
    if (bit == weights.end()) continue;
    auto sit = weights.find(skey);
    if (sit == weights.end()) throw FormatError("missing '" + skey + "' beside '" + bkey + "'");
    const Shape want_b{o.experts, p.out, p.in / 32, 16}, want_s{o.experts, p.out, p.in / 32};
    if (p.in % 32 != 0 || bit->second.dtype() != Dtype::u8 || bit->second.shape() != want_b) {
      throw FormatError("'" + bkey + "' is " + std::string(dtype_name(bit->second.dtype())) + " " +
                        shape_str(bit->second.shape()) + ", expected u8 " + shape_str(want_b));
    }
    if (sit->second.dtype() != Dtype::u8 || sit->second.shape() != want_s) {
      throw FormatError("'" + skey + "' is " + std::string(dtype_name(sit->second.dtype())) + " " +
                        shape_str(sit->second.shape()) + ", expected u8 " + shape_str(want_s));
    }
    const Tensor w = as_words(bit->second.reshape({o.experts, p.out, p.in / 2}));
    const Tensor scales = sit->second;
    weights.erase(bit);
    weights.erase(sit);
    if (std::string(p.name) == "down_proj") {
      weights[dst + "down_proj.weight"] = w;
      weights[dst + "down_proj.scales"] = scales;
      continue;
    }
    auto [gw, uw] = split_gate_up(w, o.intermediate, o.fused_interleaved);
    auto [gs, us] = split_gate_up(scales, o.intermediate, o.fused_interleaved);
    weights[dst + "gate_proj.weight"] = gw;
    weights[dst + "gate_proj.scales"] = gs;
    weights[dst + "up_proj.weight"] = uw;
    weights[dst + "up_proj.scales"] = us;
  }
}

void split_fused(WeightDict& weights, const std::string& base, const nn::MoeOptions& o) {
  const std::string src = base + ".experts.", dst = base + "." + o.experts_name + ".";
  auto take = [&](const std::string& key) {
    auto it = weights.find(key);
    Tensor t = it->second;
    weights.erase(it);
    return t;
  };
  split_mxfp4_blocks(weights, src, dst, o);
  if (weights.count(src + "gate_up_proj")) {
    Tensor t = out_in(take(src + "gate_up_proj"), 2 * o.intermediate, o.hidden, o.fused_in_out, src + "gate_up_proj");
    auto [g, u] = split_gate_up(t, o.intermediate, o.fused_interleaved);
    weights[dst + "gate_proj.weight"] = g;
    weights[dst + "up_proj.weight"] = u;
  }
  if (weights.count(src + "gate_up_proj_bias")) {
    auto [g, u] = split_gate_up(take(src + "gate_up_proj_bias"), o.intermediate, o.fused_interleaved);
    weights[dst + "gate_proj.bias"] = g;
    weights[dst + "up_proj.bias"] = u;
  }
  if (weights.count(src + "down_proj")) {
    weights[dst + "down_proj.weight"] =
        out_in(take(src + "down_proj"), o.hidden, o.intermediate, o.fused_in_out, src + "down_proj").contiguous();
  }
  if (weights.count(src + "down_proj_bias")) weights[dst + "down_proj.bias"] = take(src + "down_proj_bias");
  // DBRX: "experts.mlp.{w1,v1,w2}" [experts * ffn, hidden] (or [experts, ffn, hidden]); w2 is the
  // down projection transposed.
  const std::pair<const char*, const char*> dbrx[] = {{"w1", "gate_proj"}, {"v1", "up_proj"}, {"w2", "down_proj"}};
  for (const auto& [name, proj] : dbrx) {
    const std::string key = src + "mlp." + name;
    if (!weights.count(key)) continue;
    Tensor t = take(key);
    if (t.numel() != o.experts * o.intermediate * o.hidden || t.dim(-1) != o.hidden) {
      throw FormatError("'" + key + "' is " + shape_str(t.shape()) + ", expected [" +
                        std::to_string(o.experts * o.intermediate) + ", " + std::to_string(o.hidden) + "]");
    }
    t = t.reshape({o.experts, o.intermediate, o.hidden});
    weights[dst + proj + ".weight"] = std::string(name) == "w2" ? t.transpose(1, 2).contiguous() : t;
  }
}

}  // namespace

void stack_expert_weights(WeightDict& weights, const std::string& base, const nn::MoeOptions& o) {
  stack_per_expert(weights, base, o);
  split_fused(weights, base, o);
  if (!o.correction_bias.empty()) {
    auto it = weights.find(base + "." + o.correction_bias);
    if (it != weights.end() && it->second.numel() == o.experts) it->second = it->second.reshape({o.experts});
  }
}

}  // namespace lmx::models
