#include "lmx/models/embed/encoder_layer.h"

#include <cmath>

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/nn.h"
#include "lmx/core/ops/shape.h"

namespace lmx::models::embed {

Tensor bidirectional_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                               const std::vector<int64_t>& lengths) {
  const int64_t B = q.dim(0), L = q.dim(1), width = q.dim(2);
  if (heads <= 0 || width % heads != 0) {
    throw ShapeError("encoder attention: width " + std::to_string(width) + " is not a multiple of " +
                     std::to_string(heads) + " heads");
  }
  // [B, L, H * D] viewed as [B, H, L, D]
  auto heads_of = [&](const Tensor& t) { return t.reshape({B, L, heads, width / heads}).transpose(1, 2); };
  return bidirectional_attention_heads(heads_of(q), heads_of(k), heads_of(v), lengths);
}

Tensor bidirectional_attention_heads(const Tensor& q, const Tensor& k, const Tensor& v,
                                     const std::vector<int64_t>& lengths) {
  const int64_t B = q.dim(0), H = q.dim(1), L = q.dim(2), D = q.dim(3), width = H * D;
  if (static_cast<int64_t>(lengths.size()) != B) {
    throw ShapeError("encoder attention: " + std::to_string(lengths.size()) + " lengths for a batch of " +
                     std::to_string(B));
  }
  ops::AttentionParams p;
  p.scale = 1.0f / std::sqrt(static_cast<float>(D));
  p.causal = false;
  Tensor out = Tensor::zeros({B, L, width}, Dtype::f32, q.device());
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = lengths[static_cast<size_t>(b)];
    auto row = [&](const Tensor& t) { return t.slice(0, b, b + 1).slice(2, 0, n); };  // [1, H, n, D]
    Tensor o = ops::scaled_dot_product_attention(row(q), row(k), row(v), p);       // [1, H, n, D]
    out.slice(0, b, b + 1).slice(1, 0, n).copy_(o.transpose(1, 2).reshape({1, n, width}));
  }
  return out;
}

Tensor forward_row_by_row(const nn::Linear& layer, const Tensor& x) {
  if (x.ndim() != 2) throw ShapeError("row-by-row linear: expected [rows, in], got " + shape_str(x.shape()));
  std::vector<Tensor> rows;
  for (int64_t r = 0; r < x.dim(0); ++r) rows.push_back(layer.forward(x.slice(0, r, r + 1)));
  return rows.size() == 1 ? rows[0] : ops::concat(rows, 0);
}

const EncoderLayerNames kBertLayerNames = {
    "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
    "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"};
const EncoderLayerNames kDistilBertLayerNames = {
    "attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin",
    "sa_layer_norm", "ffn.lin1", "ffn.lin2", "output_layer_norm"};

PostNormEncoderLayer::PostNormEncoderLayer(const EncoderLayerOptions& o, const EncoderLayerNames& n)
    : o_(o) {
  if (o.heads <= 0 || o.hidden % o.heads != 0) {
    throw FormatError("encoder layer: hidden size " + std::to_string(o.hidden) +
                      " is not a multiple of the " + std::to_string(o.heads) + " attention heads");
  }
  query_ = std::make_unique<nn::Linear>(o.hidden, o.hidden, true);
  key_ = std::make_unique<nn::Linear>(o.hidden, o.hidden, true);
  value_ = std::make_unique<nn::Linear>(o.hidden, o.hidden, true);
  attn_out_ = std::make_unique<nn::Linear>(o.hidden, o.hidden, true);
  attn_norm_ = std::make_unique<nn::LayerNorm>(o.hidden, o.norm_eps);
  up_ = std::make_unique<nn::Linear>(o.hidden, o.intermediate, true);
  down_ = std::make_unique<nn::Linear>(o.intermediate, o.hidden, true);
  ffn_norm_ = std::make_unique<nn::LayerNorm>(o.hidden, o.norm_eps);
  register_module(n.query, *query_);
  register_module(n.key, *key_);
  register_module(n.value, *value_);
  register_module(n.attn_out, *attn_out_);
  register_module(n.attn_norm, *attn_norm_);
  register_module(n.up, *up_);
  register_module(n.down, *down_);
  register_module(n.ffn_norm, *ffn_norm_);
}

Tensor PostNormEncoderLayer::forward(const Tensor& x, const std::vector<int64_t>& lengths) const {
  const nn::Linear* qkv_layers[3] = {query_.get(), key_.get(), value_.get()};
  std::vector<Tensor> qkv = nn::forward_shared_input(x, qkv_layers);
  Tensor attn = bidirectional_attention(qkv[0], qkv[1], qkv[2], o_.heads, lengths);
  Tensor h = attn_norm_->forward(ops::add(x, attn_out_->forward(attn)));
  Tensor ffn = down_->forward(nn::activate(o_.act, up_->forward(h)));
  return ffn_norm_->forward(ops::add(h, ffn));
}

}  // namespace lmx::models::embed
