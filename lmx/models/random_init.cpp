#include "lmx/models/random_init.h"

#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/random.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/mlp.h"

namespace lmx::models {

void randomize_model(LanguageModel& model, const RandomInitOptions& o) {
  ops::RandomGenerator rng(o.seed);
  auto fill = [&](Tensor& slot, const Shape& shape) {
    if (shape.size() == 1) {
      slot = rng.uniform(shape, 0.9f, 1.1f, o.dtype);
    } else {
      slot = rng.uniform(shape, -0.02f, 0.02f, o.dtype);
    }
  };
  // Quantizable layers: fill, then quantize right away (one f32 matrix alive at a time).
  model.for_each_module([&](const std::string&, nn::Module& m) {
    auto* l = dynamic_cast<nn::Linear*>(&m);
    auto* e = dynamic_cast<nn::Embedding*>(&m);
    auto* s = dynamic_cast<nn::SwitchLinear*>(&m);
    if (!l && !e && !s) return;
    for (auto& p : m.parameters()) {
      if (p.name.ends_with("weight")) fill(*p.tensor, p.shape);
      if (p.name.ends_with("bias")) *p.tensor = rng.uniform(p.shape, -0.02f, 0.02f, o.dtype);
    }
    if (!o.quantization) return;
    const auto& q = *o.quantization;
    if (l && l->in_features() % q.group_size == 0) l->quantize(q.bits, q.group_size, o.dtype, q.mode);
    if (e && e->dim() % q.group_size == 0) e->quantize(q.bits, q.group_size, o.dtype, q.mode);
    if (s) s->quantize(q.bits, q.group_size, o.dtype, q.mode);
  });
  for (auto& p : model.parameters()) {
    if (!p.tensor->defined()) fill(*p.tensor, p.shape);
  }
  if (!o.device.is_cpu()) model.to(o.device);
  model.prepare_for_inference();
}

}  // namespace lmx::models
