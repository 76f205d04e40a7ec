#include "lmx/generate/quantized_kv_cache.h"

#include <algorithm>

#include "lmx/base/error.h"
#include "lmx/core/ops/shape.h"
#include "lmx/core/quantized_weight.h"
#include "lmx/generate/simple_kv_cache.h"

namespace lmx::generate {
namespace {

Tensor grow(const Tensor& x, int64_t prev, int64_t capacity) {
  Shape s = x.shape();
  s[2] = capacity;
  Tensor out = Tensor::zeros(s, x.dtype(), x.device());
  if (prev > 0) out.slice(2, 0, prev).copy_(x.slice(2, 0, prev));
  return out;
}

}  // namespace

void check_kv_bits(int bits, const std::string& what) {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 5 && bits != 6 && bits != 8) {
    throw InvalidArgument(what + " " + std::to_string(bits) + " is not one of 2, 3, 4, 5, 6, 8");
  }
}

void check_kv_group_size(int group_size, const std::string& what) {
  if (group_size != 32 && group_size != 64 && group_size != 128) {
    throw InvalidArgument(what + " " + std::to_string(group_size) + " is not 32, 64 or 128");
  }
}

std::vector<Tensor> quantize_rows(const Tensor& x, int group_size, int bits) {
  const int64_t B = x.dim(0), H = x.dim(1), L = x.dim(2), D = x.dim(3);
  if (D % group_size != 0 || (D * bits) % 32 != 0) {
    throw InvalidArgument("quantized kv cache: head_dim " + std::to_string(D) +
                          " is not a multiple of the group size " + std::to_string(group_size) +
                          " (choose kv_group_size dividing head_dim)");
  }
  // Each position's row of D values is one row of a quantized matrix [B*H*L, D].
  QuantizedWeight q = QuantizedWeight::quantize(x.reshape({B * H * L, D}), bits, group_size, Dtype::f32);
  return {q.w.reshape({B, H, L, D * bits / 32}), q.scales.reshape({B, H, L, D / group_size}),
          q.biases.reshape({B, H, L, D / group_size})};
}

Tensor dequantize_rows(
    const Tensor& w_in, const Tensor& s_in, const Tensor& b_in, int group_size, int bits) {
  const int64_t B = w_in.dim(0), H = w_in.dim(1), L = w_in.dim(2), D = w_in.dim(3) * 32 / bits;
  QuantizedWeight q;
  q.bits = bits;
  q.group_size = group_size;
  q.w = w_in.contiguous().reshape({B * H * L, w_in.dim(3)});
  q.scales = s_in.to(Dtype::f32).contiguous().reshape({B * H * L, D / group_size});
  q.biases = b_in.to(Dtype::f32).contiguous().reshape({B * H * L, D / group_size});
  return q.dequantize().reshape({B, H, L, D});
}

QuantizedKVCache::QuantizedKVCache(int group_size, int bits, int v_bits, int64_t step)
    : group_(group_size), bits_(bits), v_bits_(v_bits > 0 ? v_bits : bits), step_(step) {
  check_kv_group_size(group_size, "quantized kv cache: group size");
  check_kv_bits(bits_, "quantized kv cache: key bits");
  check_kv_bits(v_bits_, "quantized kv cache: value bits");
  buf_.k_bits = bits_;
  buf_.v_bits = v_bits_;
  buf_.group_size = group_;
}

QuantizedKVCache::QuantizedKVCache(const std::vector<Tensor>& st, int group_size, int64_t step)
    : QuantizedKVCache(group_size, 8, 8, step) {
  if (st.size() != 6) {
    throw FormatError(
        "QuantizedKVCache state: expected 6 arrays (key and value weights, scales, biases), got " +
        std::to_string(st.size()));
  }
  for (const auto& t : st) {
    if (t.ndim() != 4 || t.dim(2) != st[0].dim(2))
      throw FormatError("QuantizedKVCache state: arrays must be [B, H, L, *] with equal L");
  }
  auto bits_of = [&](const Tensor& w, const Tensor& s, const char* what) {
    const int64_t dim = s.dim(3) * group_size;
    if (w.dtype() != Dtype::u32 || dim == 0 || (w.dim(3) * 32) % dim != 0) {
      throw FormatError(std::string("QuantizedKVCache state: ") + what + " weights " +
                        shape_str(w.shape()) + " do not fit scales " + shape_str(s.shape()) +
                        " at group size " + std::to_string(group_size));
    }
    const int bits = static_cast<int>(w.dim(3) * 32 / dim);
    check_kv_bits(bits, std::string("QuantizedKVCache state: ") + what + " bits");
    return bits;
  };
  bits_ = bits_of(st[0], st[1], "key");
  v_bits_ = bits_of(st[3], st[4], "value");
  buf_.k_bits = bits_;
  buf_.v_bits = v_bits_;
  buf_.k_w = st[0].contiguous().clone();
  buf_.k_scales = st[1].to(Dtype::f32).contiguous().clone();
  buf_.k_biases = st[2].to(Dtype::f32).contiguous().clone();
  buf_.v_w = st[3].contiguous().clone();
  buf_.v_scales = st[4].to(Dtype::f32).contiguous().clone();
  buf_.v_biases = st[5].to(Dtype::f32).contiguous().clone();
  offset_ = st[0].dim(2);
}

nn::QuantizedKV QuantizedKVCache::view(int64_t n) const {
  nn::QuantizedKV v = buf_;
  if (!v.k_w.defined()) return v;
  for (Tensor* t : {&v.k_w, &v.k_scales, &v.k_biases, &v.v_w, &v.v_scales, &v.v_biases})
    *t = t->slice(2, 0, n);
  return v;
}

nn::QuantizedKV QuantizedKVCache::update_and_fetch_quantized(const Tensor& keys,
                                                             const Tensor& values) {
  check_kv(keys, values, "QuantizedKVCache");
  const int64_t n = keys.dim(2);
  std::vector<Tensor> k = quantize_rows(keys, group_, bits_);
  std::vector<Tensor> v = quantize_rows(values, group_, v_bits_);
  if (buf_.k_w.defined() && (buf_.k_w.dim(0) != keys.dim(0) || buf_.k_w.dim(1) != keys.dim(1) ||
                             buf_.k_w.dim(3) != k[0].dim(3) || buf_.v_w.dim(3) != v[0].dim(3))) {
    throw ShapeError("QuantizedKVCache: new keys " + shape_str(keys.shape()) +
                     " do not match the cache");
  }
  const int64_t capacity = buf_.k_w.defined() ? buf_.k_w.dim(2) : 0;
  if (offset_ + n > capacity) {
    const int64_t grown = (offset_ + n + step_ - 1) / step_ * step_;
    if (!buf_.k_w.defined()) {
      buf_.k_w = grow(k[0], 0, grown);
      buf_.k_scales = grow(k[1], 0, grown);
      buf_.k_biases = grow(k[2], 0, grown);
      buf_.v_w = grow(v[0], 0, grown);
      buf_.v_scales = grow(v[1], 0, grown);
      buf_.v_biases = grow(v[2], 0, grown);
    } else {
      for (Tensor* t :
           {&buf_.k_w, &buf_.k_scales, &buf_.k_biases, &buf_.v_w, &buf_.v_scales, &buf_.v_biases}) {
        *t = grow(*t, offset_, grown);
      }
    }
  }
  buf_.k_w.slice(2, offset_, offset_ + n).copy_(k[0]);
  buf_.k_scales.slice(2, offset_, offset_ + n).copy_(k[1]);
  buf_.k_biases.slice(2, offset_, offset_ + n).copy_(k[2]);
  buf_.v_w.slice(2, offset_, offset_ + n).copy_(v[0]);
  buf_.v_scales.slice(2, offset_, offset_ + n).copy_(v[1]);
  buf_.v_biases.slice(2, offset_, offset_ + n).copy_(v[2]);
  offset_ += n;
  return view(offset_);
}

std::pair<Tensor, Tensor> QuantizedKVCache::update_and_fetch(const Tensor& keys,
                                                             const Tensor& values) {
  update_and_fetch_quantized(keys, values);
  return dequantized();
}

std::pair<Tensor, Tensor> QuantizedKVCache::dequantized() const {
  nn::QuantizedKV v = view(offset_);
  if (!v.k_w.defined()) return {};
  return {dequantize_rows(v.k_w, v.k_scales, v.k_biases, group_, bits_),
          dequantize_rows(v.v_w, v.v_scales, v.v_biases, group_, v_bits_)};
}

int64_t QuantizedKVCache::trim(int64_t n) {
  const int64_t dropped = std::clamp<int64_t>(n, 0, offset_);
  offset_ -= dropped;
  return dropped;
}

std::vector<Tensor> QuantizedKVCache::state() const {
  if (!buf_.k_w.defined() || offset_ == 0) return {};
  nn::QuantizedKV v = view(offset_);
  return {v.k_w, v.k_scales, v.k_biases, v.v_w, v.v_scales, v.v_biases};
}

std::vector<std::string> QuantizedKVCache::meta_state() const {
  return {std::to_string(offset_), std::to_string(group_), std::to_string(bits_)};
}

std::unique_ptr<nn::KVCache> QuantizedKVCache::copy() const {
  return heads(0, buf_.k_w.defined() ? buf_.k_w.dim(1) : 0);
}

std::unique_ptr<nn::KVCache> QuantizedKVCache::heads(int64_t begin, int64_t count) const {
  auto c = std::make_unique<QuantizedKVCache>(group_, bits_, v_bits_, step_);
  c->offset_ = offset_;
  c->buf_.k_w = nn::clone_heads(buf_.k_w, begin, count);
  c->buf_.k_scales = nn::clone_heads(buf_.k_scales, begin, count);
  c->buf_.k_biases = nn::clone_heads(buf_.k_biases, begin, count);
  c->buf_.v_w = nn::clone_heads(buf_.v_w, begin, count);
  c->buf_.v_scales = nn::clone_heads(buf_.v_scales, begin, count);
  c->buf_.v_biases = nn::clone_heads(buf_.v_biases, begin, count);
  return c;
}

}  // namespace lmx::generate
