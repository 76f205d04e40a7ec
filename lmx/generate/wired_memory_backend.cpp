#include "lmx/generate/wired_memory_backend.h"

#include <set>

#include "lmx/core/backend.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/mlp.h"

namespace lmx::generate {

std::optional<size_t> CpuResidencyBackend::recommended_working_set() {
  const size_t ram = residency::physical_memory();
  if (ram == 0) return std::nullopt;
  return ram > reserve_ ? ram - reserve_ : 0;
}

size_t DevicePoolBackend::current_limit() { return backend_for(device_).reserved_pool_bytes(); }
std::string DevicePoolBackend::apply(size_t limit) { return backend_for(device_).reserve_pool(limit); }
std::optional<size_t> DevicePoolBackend::recommended_working_set() {
  return backend_for(device_).recommended_working_set(reserve_);
}

std::shared_ptr<WiredBackend> make_default_wired_backend() {
  return std::make_shared<CpuResidencyBackend>();
}

std::vector<residency::Region> weight_regions(nn::Module& model, size_t* mapped_bytes) {
  std::vector<residency::Region> regions;
  if (mapped_bytes) *mapped_bytes = 0;
  std::set<const void*> replaced;  // stored quantized tensors that a prepared copy replaces
  model.for_each_module([&](const std::string&, nn::Module& m) {
    const nn::WeightMatrix* w = nullptr;
    if (auto* linear = dynamic_cast<nn::Linear*>(&m)) w = &linear->weight();
    if (auto* embedding = dynamic_cast<nn::Embedding*>(&m)) w = &embedding->weight();
    if (auto* experts = dynamic_cast<nn::SwitchLinear*>(&m)) {
      for (const auto& p : experts->prepared())
        if (p && p->host_data()) regions.push_back({p->host_data(), p->bytes()});
      return;
    }
    if (!w || !w->quantized() || !w->quant().prepared || !w->quant().prepared->host_data()) return;
    const auto& q = w->quant();
    regions.push_back({q.prepared->host_data(), q.prepared->bytes()});
    for (const Tensor* t : {&q.w, &q.scales, &q.biases})
      if (t->defined()) replaced.insert(t->raw_data());
  });
  for (const auto& p : model.parameters()) {
    const Tensor& t = *p.tensor;
    if (!t.defined() || !t.device().is_cpu() || replaced.count(t.raw_data())) continue;
    regions.push_back({t.raw_data(), t.nbytes()});
    if (mapped_bytes && t.storage()->is_foreign()) *mapped_bytes += t.nbytes();
  }
  return regions;
}

std::vector<residency::Region> kv_regions(const nn::KVCacheList& caches) {
  std::vector<residency::Region> regions;
  for (const auto& c : caches) {
    for (const Tensor& t : c->buffers()) {
      // Views of the cache's own buffers share their storage with the cache; a state
      // built on the fly (use count 1) is a temporary and not worth pinning.
      if (!t.defined() || !t.device().is_cpu() || t.storage().use_count() < 2) continue;
      regions.push_back({t.storage()->data(), t.storage()->nbytes()});
    }
  }
  return regions;
}

size_t region_bytes(const std::vector<residency::Region>& regions) {
  size_t n = 0;
  for (const auto& r : regions) n += r.bytes;
  return n;
}

}  // namespace lmx::generate
