// What a recurrent sequence mixer (Mamba, Mamba2, short conv, gated delta-net, RG-LRU)
// offers a model: a forward pass that reads and replaces its StateCache, and how many
// arrays that cache holds.
#pragma once

#include "lmx/nn/module.h"
#include "lmx/nn/state_cache.h"

namespace lmx::nn {

class RecurrentMixer : public Module {
 public:
  // x [batch, seq, hidden] -> [batch, seq, hidden]; cache null: a fresh sequence.
  virtual Tensor forward(const Tensor& x, StateCache* cache) const = 0;
  virtual size_t cache_arrays() const = 0;
};

// The state cache of `cache` (null when cache is null); InvalidArgument when a layer's
// cache is not a StateCache (a cache list made for another model).
StateCache* as_state_cache(KVCache* cache, const char* layer);

}  // namespace lmx::nn
