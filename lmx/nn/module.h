// Module tree with named parameters. Attribute names are the checkpoint names
// ("model.layers.3.self_attn.q_proj.weight"), so loading needs no mapping tables; one
// visitor over named parameters serves loading, quantization, LoRA and optimizers.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "lmx/core/tensor.h"

namespace lmx::nn {

class Module {
 public:
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  virtual ~Module() = default;

  struct ParamSlot {
    std::string name;  // full dotted path
    Tensor* tensor;
    Shape shape;       // expected shape (checked on load)
    bool integer;      // packed quantized words (u32) rather than floats
    bool optional;     // may be absent from a checkpoint (then left undefined)
  };
  // Every parameter of this module and its descendants, in registration order.
  std::vector<ParamSlot> parameters(const std::string& prefix = "");
  // Moves every defined parameter to `device` (before quantized weights are prepared:
  // prepared copies are not parameters).
  void to(Device device);
  // Calls fn(path, module) for this module and every descendant.
  void for_each_module(const std::function<void(const std::string&, Module&)>& fn,
                       const std::string& prefix = "");

 protected:
  void register_parameter(std::string name, Tensor& slot, Shape shape, bool integer = false,
                          bool optional = false);
  void register_module(std::string name, Module& child);
  // Drops this module's own parameter registrations (a layer switching to quantized).
  void clear_parameters() { params_.clear(); }

 private:
  struct Own {
    std::string name;
    Tensor* tensor;
    Shape shape;
    bool integer;
    bool optional;
  };
  std::vector<Own> params_;
  std::vector<std::pair<std::string, Module*>> children_;
};

// Joins a prefix and a name with a dot ("" + "x" = "x").
std::string join_path(const std::string& prefix, const std::string& name);

}  // namespace lmx::nn
