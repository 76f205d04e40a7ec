#include "lmx/models/quantize.h"

#include "lmx/base/error.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/mlp.h"

namespace lmx::models {

namespace {

// Why a weight of `in` inputs stays as it is, or "" when it can be quantized.
std::string why_unquantized(bool already_quantized, int64_t in, int group_size) {
  if (already_quantized) return "already quantized";
  if (in % group_size != 0) {
    return "input dimension " + std::to_string(in) + " is not a multiple of the group size " +
           std::to_string(group_size);
  }
  return "";
}

}  // namespace

std::vector<std::string> quantize_model(LanguageModel& model, const QuantizeOptions& o,
                                        std::vector<UnquantizedModule>* skipped) {
  if (!is_supported_quantization(o.bits, o.group_size)) {
    throw InvalidArgument("quantize: unsupported bits=" + std::to_string(o.bits) +
                          " group_size=" + std::to_string(o.group_size));
  }
  std::vector<std::string> done;
  model.for_each_module([&](const std::string& path, nn::Module& m) {
    auto skip = [&](const std::string& why) {
      if (why.empty()) return false;
      if (skipped) skipped->push_back({path, why});
      return true;
    };
    if (auto* l = dynamic_cast<nn::Linear*>(&m)) {
      if (skip(why_unquantized(l->weight().quantized(), l->in_features(), o.group_size))) return;
      l->quantize(o.bits, o.group_size, o.scale_dtype);
    } else if (auto* e = dynamic_cast<nn::Embedding*>(&m)) {
      if (skip(why_unquantized(e->weight().quantized(), e->dim(), o.group_size))) return;
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
