// A key-value cache that appends along the sequence (what generation's simple cache does),
// for the VLM tests' calls in pieces.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lmx/core/ops/shape.h"
#include "lmx/models/vlm/vision_language_model.h"
#include "lmx/nn/kv_cache.h"

namespace lmx::testing {

// Keys and values appended along the sequence (what generation's simple cache does).
class GrowingCache : public nn::KVCache {
 public:
  int64_t offset() const override { return k_.defined() ? k_.dim(2) : 0; }
  std::pair<Tensor, Tensor> update_and_fetch(const Tensor& k, const Tensor& v) override {
    k_ = k_.defined() ? ops::concat({k_, k}, 2) : k.contiguous();
    v_ = v_.defined() ? ops::concat({v_, v}, 2) : v.contiguous();
    return {k_, v_};
  }
  std::vector<Tensor> state() const override { return {k_, v_}; }
  std::string class_name() const override { return "GrowingCache"; }
  std::unique_ptr<nn::KVCache> copy() const override { return std::make_unique<GrowingCache>(*this); }

 private:
  Tensor k_, v_;
};

inline nn::KVCacheList growing_caches(const models::vlm::VisionLanguageModel& vlm) {
  nn::KVCacheList caches;
  for (int64_t i = 0; i < vlm.num_layers(); ++i) caches.push_back(std::make_unique<GrowingCache>());
  return caches;
}

}  // namespace lmx::testing
