// The post-norm encoder layer of BERT and DistilBERT, and its bidirectional multi-head
// attention over a right-padded batch: every real token sees every real token of its
// row, padding keys are masked out.
#pragma once

#include <memory>
#include <vector>

#include "lmx/core/tensor.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/mlp.h"
#include "lmx/nn/norm.h"

namespace lmx::models::embed {

// q, k, v [batch, seq, heads * head_dim] -> [batch, seq, heads * head_dim]: per row b,
// softmax(q k^T / sqrt(head_dim)) v over its first lengths[b] tokens only (the rest of the
// row is 0). Each row runs as its own attention call over exactly its real tokens, so a
// row's result is bit for bit the same in any batch and with any padding (one masked call
// over the padded batch would sum the softmax over a different number of SIMD lanes).
Tensor bidirectional_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads,
                               const std::vector<int64_t>& lengths);
// The same over heads-first q, k, v [batch, heads, seq, head_dim] (strided views allowed:
// rotary encoders rotate q and k in that layout) -> [batch, seq, heads * head_dim].
Tensor bidirectional_attention_heads(const Tensor& q, const Tensor& k, const Tensor& v,
                                     const std::vector<int64_t>& lengths);

// layer(x) for x [rows, in], one row at a time: the CPU runs a single row through another
// kernel (a matvec) than several (a GEMM), with another summation order, so heads over
// pooled rows (Dense, pooler, classifier) run row by row to give every input the same
// bits in any batch. They are small next to the encoder.
Tensor forward_row_by_row(const nn::Linear& layer, const Tensor& x);

// Checkpoint names of a layer's parts (relative to the layer).
struct EncoderLayerNames {
  const char* query;
  const char* key;
  const char* value;
  const char* attn_out;
  const char* attn_norm;
  const char* up;
  const char* down;
  const char* ffn_norm;
};
// BERT / RoBERTa: "attention.self.query", ..., "output.LayerNorm".
extern const EncoderLayerNames kBertLayerNames;
// DistilBERT: "attention.q_lin", ..., "output_layer_norm".
extern const EncoderLayerNames kDistilBertLayerNames;

struct EncoderLayerOptions {
  int64_t hidden = 0;
  int64_t heads = 0;
  int64_t intermediate = 0;
  float norm_eps = 1e-12f;
  nn::Activation act = nn::Activation::gelu;
};

// h = norm1(x + out(attention(x))); y = norm2(h + down(act(up(h)))).
class PostNormEncoderLayer : public nn::Module {
 public:
  PostNormEncoderLayer(const EncoderLayerOptions& o, const EncoderLayerNames& names);
  // x [batch, seq, hidden] (row b: lengths[b] real tokens) -> [batch, seq, hidden].
  Tensor forward(const Tensor& x, const std::vector<int64_t>& lengths) const;

 private:
  EncoderLayerOptions o_;
  std::unique_ptr<nn::Linear> query_, key_, value_, attn_out_, up_, down_;
  std::unique_ptr<nn::LayerNorm> attn_norm_, ffn_norm_;
};

}  // namespace lmx::models::embed
