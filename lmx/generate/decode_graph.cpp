#include "lmx/generate/decode_graph.h"

#include "lmx/base/error.h"
#include "lmx/core/ops/reduce.h"
#include "lmx/core/step_values.h"
#include "lmx/generate/simple_kv_cache.h"

namespace lmx::generate {

namespace {

const models::ForwardOptions kLastLogitsOnly{nullptr, true};

// The caches as simple caches of one device, offset and capacity; empty when any is not.
std::vector<SimpleKVCache*> simple_caches(nn::KVCacheList& cache) {
  std::vector<SimpleKVCache*> out;
  for (auto& c : cache) {
    auto* s = dynamic_cast<SimpleKVCache*>(c.get());
    if (!s || s->device().is_cpu() || s->capacity() == 0 || (!out.empty() && (s->offset() != out[0]->offset() ||
                                                                               s->capacity() != out[0]->capacity() ||
                                                                               s->device() != out[0]->device()))) {
      return {};
    }
    out.push_back(s);
  }
  return out;
}

}  // namespace

bool DecodeGraph::step(models::LanguageModel& model, nn::KVCacheList& cache, int32_t token, std::vector<float>& row,
                       int32_t* chosen) {
  if (disabled_) return false;
  std::vector<SimpleKVCache*> caches = simple_caches(cache);
  if (caches.empty()) return false;
  const int64_t position = caches[0]->offset(), capacity = caches[0]->capacity();
  if (position + 1 > capacity) return false;  // the buffers grow in this step: eager
  const Device device = caches[0]->device();
  std::vector<const void*> buffers;
  for (SimpleKVCache* c : caches) buffers.push_back(c->buffer_id());
  GraphBackend* backend = graph_backend_for(device);
  if (!backend) return false;
  if (!values_.defined() || values_.device() != device) {
    values_ = Tensor::zeros({2}, Dtype::i64, device);
    host_values_ = backend->pinned_host(2 * sizeof(int64_t));
  }
  int64_t* host_values = static_cast<int64_t*>(host_values_.get());
  host_values[0] = token, host_values[1] = position;  // read by the replay's first node
  if (!graph_ || buffers != buffers_ || greedy_ != (chosen != nullptr)) {
    greedy_ = chosen != nullptr;
    graph_.reset();
    logits_ = Tensor();
    if (!capture(model, cache, position, capacity)) {
      disabled_ = true;
      return false;
    }
    buffers_ = std::move(buffers);
  }
  graph_->replay();
  backend_for(device).synchronize();  // the logits are in host_logits_
  ++replays_;
  for (SimpleKVCache* c : caches) c->advance(1);
  if (greedy_) {
    *chosen = *static_cast<const int32_t*>(host_logits_.get());
    return true;
  }
  const float* logits = static_cast<const float*>(host_logits_.get());
  row.assign(logits, logits + vocab_);
  return true;
}

bool DecodeGraph::capture(models::LanguageModel& model, nn::KVCacheList& cache, int64_t position, int64_t capacity) {
  const Device device = values_.device();
  GraphBackend* backend = graph_backend_for(device);
  if (!backend) return false;
  vocab_ = model.vocab_size();
  if (!host_logits_ || host_logits_bytes_ < static_cast<size_t>(vocab_) * sizeof(float)) {
    host_logits_bytes_ = static_cast<size_t>(vocab_) * sizeof(float);
    host_logits_ = backend->pinned_host(host_logits_bytes_);
  }
  if (!backend->begin_graph_capture()) return false;
  const StepValues values{device, values_.data<int64_t>() + 1, position, capacity};
  Tensor logits;
  bool ok = true;
  try {
    backend->copy_async(values_.data<int64_t>(), host_values_.get(), 2 * sizeof(int64_t), CopyDirection::host_to_device);
    StepScope scope(values);
    logits = model.forward(values_.slice(0, 0, 1).reshape({1, 1}), &cache, kLastLogitsOnly);
    Tensor last = logits.select(1, -1).select(0, 0).contiguous();
    if (last.dtype() != Dtype::f32 || last.numel() != vocab_) throw Unsupported("decode graph: logits of another shape");
    if (greedy_) {
      Tensor id = ops::argmax(last, 0);  // i32 scalar
      backend->copy_async(host_logits_.get(), id.data<int32_t>(), sizeof(int32_t), CopyDirection::device_to_host);
      logits = id;
    } else {
      backend->copy_async(host_logits_.get(), last.data<float>(), host_logits_bytes_, CopyDirection::device_to_host);
      logits = last;
    }
  } catch (const std::exception&) {
    ok = false;
  }
  graph_ = backend->end_graph_capture(ok);
  // The forward counted the position in every cache it reached; the replay writes it.
  for (auto& c : cache) {
    if (c->offset() > position) c->trim(c->offset() - position);
  }
  if (!graph_) return false;
  logits_ = logits;
  ++captures_;
  return true;
}

}  // namespace lmx::generate
