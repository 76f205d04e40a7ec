#include "lmx/train/fuse.h"

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/linalg.h"

namespace lmx::train {

void fuse_adapters(models::TransformerLM& model, const LoraAdapters& adapters, bool dequantize) {
  auto linears = linear_layers(model);
  for (const auto& [name, pair] : adapters.layers) {
    auto it = linears.find(name);
    if (it == linears.end()) throw InvalidArgument("fuse: the model has no Linear layer '" + name + "'");
    nn::Linear& l = *it->second;
    // [out, in] = scale * (a [in, r] @ b [r, out])^T
    Tensor delta = ops::mul(ops::matmul(pair.a.value(), pair.b.value()).transpose(0, 1),
                            static_cast<double>(adapters.config.scale));
    if (l.weight().quantized()) {
      const QuantizedWeight q = l.weight().quant();  // a copy: set_dense_weight replaces it
      l.set_dense_weight(ops::add(q.dequantize(), delta.to(q.device())));
      if (!dequantize) l.quantize(q.bits, q.group_size, q.scale_dtype());
    } else {
      const Tensor& w = l.weight().dense();
      l.set_dense_weight(ops::add(w.to(Dtype::f32), delta.to(w.device())).to(w.dtype()));
    }
  }
  LoraAdapters::detach(model);
  if (!dequantize) return;
  model.for_each_module([](const std::string&, nn::Module& m) {
    if (auto* l = dynamic_cast<nn::Linear*>(&m); l && l->weight().quantized()) l->dequantize();
    if (auto* e = dynamic_cast<nn::Embedding*>(&m); e && e->weight().quantized()) e->dequantize();
  });
}

}  // namespace lmx::train
