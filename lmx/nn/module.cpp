#include "lmx/nn/module.h"

namespace lmx::nn {

std::string join_path(const std::string& prefix, const std::string& name) {
  if (prefix.empty()) return name;
  if (name.empty()) return prefix;
  return prefix + "." + name;
}

void Module::register_parameter(std::string name, Tensor& slot, Shape shape, bool integer,
                                bool optional) {
  params_.push_back({std::move(name), &slot, std::move(shape), integer, optional});
}

void Module::register_module(std::string name, Module& child) {
  children_.emplace_back(std::move(name), &child);
}

std::vector<Module::ParamSlot> Module::parameters(const std::string& prefix) {
  std::vector<ParamSlot> out;
  for (auto& p : params_) out.push_back({join_path(prefix, p.name), p.tensor, p.shape, p.integer, p.optional});
  for (auto& [name, child] : children_) {
    auto sub = child->parameters(join_path(prefix, name));
    out.insert(out.end(), std::make_move_iterator(sub.begin()), std::make_move_iterator(sub.end()));
  }
  return out;
}

void Module::to(Device device) {
  for (auto& p : parameters())
    if (p.tensor->defined() && p.tensor->device() != device) *p.tensor = p.tensor->to(device);
}

void Module::for_each_module(const std::function<void(const std::string&, Module&)>& fn,
                             const std::string& prefix) {
  fn(prefix, *this);
  for (auto& [name, child] : children_) child->for_each_module(fn, join_path(prefix, name));
}

}  // namespace lmx::nn
