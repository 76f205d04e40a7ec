#include "lmx/train/fuse.h"

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/ops/reduce.h"

namespace lmx::train {

void fuse_adapters(models::TransformerLM& model, const LoraAdapters& adapters, bool dequantize) {
  LoraAdapters::detach(model);
  if (!adapters.weights.empty()) {
    LoraAdapters weights_only;
    weights_only.weights = adapters.weights;
    weights_only.attach(model);
  }
  auto linears = linear_layers(model);
  for (const auto& [name, pair] : adapters.layers) {
    auto it = linears.find(name);
    if (it == linears.end()) throw InvalidArgument("fuse: the model has no Linear layer '" + name + "'");
    nn::Linear& l = *it->second;
    const bool quantized = l.weight().quantized();
    const QuantizedWeight q = quantized ? l.weight().quant() : QuantizedWeight{};  // set_dense_weight replaces it
    const Dtype dtype = quantized ? Dtype::f32 : l.weight().dense().dtype();
    Tensor w = dense_f32(l.weight());
    // [out, in] = W + scale * (a [in, r] @ b [r, out])^T
    Tensor fused = ops::add(w, ops::mul(ops::matmul(pair.a.value(), pair.b.value()).transpose(0, 1).to(w.device()),
                                        static_cast<double>(adapters.config.scale)));
    if (pair.m.defined()) {  // DoRA: each row rescaled to its learned magnitude
      Tensor norms = ops::sqrt(ops::sum(ops::square(fused), 1, /*keepdims=*/true));
      fused = ops::mul(fused, ops::div(pair.m.value().reshape({-1, 1}).to(w.device()), norms));
    }
    l.set_dense_weight(fused.to(dtype));
    if (quantized && !dequantize) l.quantize(q.bits, q.group_size, q.scale_dtype());
  }
  if (!dequantize) return;
  model.for_each_module([](const std::string&, nn::Module& m) {
    if (auto* l = dynamic_cast<nn::Linear*>(&m); l && l->weight().quantized()) l->dequantize();
    if (auto* e = dynamic_cast<nn::Embedding*>(&m); e && e->weight().quantized()) e->dequantize();
  });
}

}  // namespace lmx::train
