#include "lmx/models/quantize.h"

#include "lmx/base/error.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/mlp.h"

namespace lmx::models {

std::vector<std::string> quantize_model(LanguageModel& model, const QuantizeOptions& o) {
  if (!is_supported_quantization(o.bits, o.group_size)) {
    throw InvalidArgument("quantize: unsupported bits=" + std::to_string(o.bits) +
                          " group_size=" + std::to_string(o.group_size));
  }
  std::vector<std::string> done;
  model.for_each_module([&](const std::string& path, nn::Module& m) {
    if (auto* l = dynamic_cast<nn::Linear*>(&m)) {
      if (l->weight().quantized() || l->in_features() % o.group_size != 0) return;
      l->quantize(o.bits, o.group_size, o.scale_dtype);
    } else if (auto* e = dynamic_cast<nn::Embedding*>(&m)) {
      if (e->weight().quantized() || e->dim() % o.group_size != 0) return;
      e->quantize(o.bits, o.group_size, o.scale_dtype);
    } else if (auto* s = dynamic_cast<nn::SwitchLinear*>(&m)) {
      s->quantize(o.bits, o.group_size, o.scale_dtype);
    } else {
      return;
    }
    done.push_back(path);
  });
  model.prepare_for_inference();
  return done;
}

}  // namespace lmx::models
