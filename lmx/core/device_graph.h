// Device graphs of decode steps (lmx/generate/decode_graph.h, lmx/core/step_values.h) and
// the fused kernels of a decode step: what a backend with graphs (the CUDA one) provides
// besides its kernel table. Found by graph_backend_for(device); null where the device has
// none (the CPU, whose decode path stays as it is).
#pragma once

#include <cstdint>
#include <memory>

#include "lmx/core/backend.h"

namespace lmx {

// A captured device graph: replays the recorded launches in order on the device's
// stream; dropping it returns the memory it was captured with.
class DeviceGraph {
 public:
  virtual ~DeviceGraph() = default;
  virtual void replay() = 0;
};

namespace kernels {
// dst[b, h, *position + s, d] = src[b, h, s, d], f32 (element strides of
// [batch, heads, seq, dim]; position in device memory).
struct PositionedWriteArgs {
  int64_t batch = 1, heads = 1, seq = 1, dim = 0;
  const float* src = nullptr;
  int64_t src_strides[4] = {0, 0, 0, 1};
  void* dst = nullptr;  // f32, or bf16 where bf16_dst
  bool bf16_dst = false;
  int64_t dst_strides[4] = {0, 0, 0, 1};
  const int64_t* position = nullptr;
};

// One token of batch 1 at `position` (or *device_position when set): q rotated into
// q_out, k rotated into kbuf[:, :, position], v copied into vbuf[:, :, position]: RoPE
// of q and k (as the rope kernel computes it) and the KV cache append in one launch.
// f32 throughout but the buffers, which are f32 or bf16 (bf16_buffers: a bf16 KV cache);
// element strides of [batch, heads, seq, dim].
struct RopeAppendArgs {
  int64_t q_heads = 0, kv_heads = 0, head_dim = 0, v_head_dim = 0, rotary_dim = 0;
  bool traditional = false;
  const float* inv_freq = nullptr;  // [rotary_dim / 2]
  float mscale = 1.0f;
  const float* q = nullptr;
  int64_t q_strides[4] = {0, 0, 0, 1};
  float* q_out = nullptr;
  int64_t q_out_strides[4] = {0, 0, 0, 1};
  const float* k = nullptr;
  int64_t k_strides[4] = {0, 0, 0, 1};
  const float* v = nullptr;
  int64_t v_strides[4] = {0, 0, 0, 1};
  void* kbuf = nullptr;
  int64_t kbuf_strides[4] = {0, 0, 0, 1};
  void* vbuf = nullptr;
  int64_t vbuf_strides[4] = {0, 0, 0, 1};
  bool bf16_buffers = false;
  int64_t position = 0;
  const int64_t* device_position = nullptr;
};
}  // namespace kernels

class GraphBackend {
 public:
  virtual ~GraphBackend() = default;
  // A KV cache append at the position of the captured step (replays repeat it per token).
  virtual void write_at_position(const kernels::PositionedWriteArgs& args) = 0;
  virtual void rope_append(const kernels::RopeAppendArgs& args) = 0;
  // Rows ids[0..count) of dequant(W) into out (row stride ldo), the ids read on the device
  // (the captured step's token: a quantized embedding table); the caller checked them.
  virtual void dequantize_gather(const kernels::QuantView& w, const int64_t* ids, int64_t count, float* out,
                                 int64_t ldo) = 0;
  virtual void dequantize_prepared_gather(const PreparedWeight& w, const int64_t* ids, int64_t count, float* out,
                                          int64_t ldo) = 0;
  // Records the work this thread queues on the device from begin to end, without running
  // it; memory allocated meanwhile stays the graph's (fixed addresses) until it is dropped.
  // begin: false when graphs are off (LMX_CUDA_GRAPHS=0, the CUDA profile on). end: null
  // when the capture failed (something waited for the device); keep = false drops it.
  virtual bool begin_graph_capture() = 0;
  virtual std::unique_ptr<DeviceGraph> end_graph_capture(bool keep) = 0;
  // Page-locked host memory of `bytes` (freed with the pointer), and a copy between it
  // and the device queued on the device's stream without waiting (a captured step's
  // inputs and logits travel as copy nodes of its graph; Backend::synchronize waits).
  virtual std::shared_ptr<void> pinned_host(size_t bytes) = 0;
  virtual void copy_async(void* dst, const void* src, size_t bytes, CopyDirection direction) = 0;
};

inline GraphBackend* graph_backend_for(Device device) {
  return device.is_cpu() ? nullptr : dynamic_cast<GraphBackend*>(&backend_for(device));
}

}  // namespace lmx
