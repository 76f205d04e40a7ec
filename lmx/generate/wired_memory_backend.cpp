#include "lmx/generate/wired_memory_backend.h"

#include <set>

#include "lmx/backend/cpu/quantized.h"
#ifdef LMX_HAS_CUDA
#include "lmx/backend/cuda/cuda_wired.h"
#endif
#include "lmx/nn/linear.h"
#include "lmx/nn/mlp.h"

namespace lmx::generate {

std::optional<size_t> CpuResidencyBackend::recommended_working_set() {
  const size_t ram = residency::physical_memory();
  if (ram == 0) return std::nullopt;
  return ram > reserve_ ? ram - reserve_ : 0;
}

#ifdef LMX_HAS_CUDA
size_t CudaPoolBackend::current_limit() { return cuda::reserved_pool_bytes(device_); }
std::string CudaPoolBackend::apply(size_t limit) { return cuda::reserve_pool(device_, limit); }
std::optional<size_t> CudaPoolBackend::recommended_working_set() {
  return cuda::recommended_working_set(device_, reserve_);
}
#endif

std::shared_ptr<WiredBackend> make_default_wired_backend() {
  return std::make_shared<CpuResidencyBackend>();
}

std::vector<residency::Region> weight_regions(nn::Module& model, size_t* mapped_bytes) {
  std::vector<residency::Region> regions;
  if (mapped_bytes) *mapped_bytes = 0;
  std::set<const void*> replaced;  // stored quantized tensors that a repacked copy replaces
  model.for_each_module([&](const std::string&, nn::Module& m) {
    const nn::WeightMatrix* w = nullptr;
    if (auto* linear = dynamic_cast<nn::Linear*>(&m)) w = &linear->weight();
    if (auto* embedding = dynamic_cast<nn::Embedding*>(&m)) w = &embedding->weight();
    if (auto* experts = dynamic_cast<nn::SwitchLinear*>(&m)) {
      for (const auto& p : experts->packed())
        if (p && !p->empty()) regions.push_back({p->data(), p->bytes()});
      return;
    }
    if (!w || !w->quantized() || !w->quant().packed || w->quant().packed->empty()) return;
    const auto& q = w->quant();
    regions.push_back({q.packed->data(), q.packed->bytes()});
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
    for (const Tensor& t : c->state()) {
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
