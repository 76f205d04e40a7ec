// Device graphs of decode steps (lmx/generate/decode_graph.h, lmx/core/step_values.h):
// what a backend with graphs (the CUDA one) provides besides its kernel table. Found by
// graph_backend_for(device); null where the device has none (the CPU).
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
  float* dst = nullptr;
  int64_t dst_strides[4] = {0, 0, 0, 1};
  const int64_t* position = nullptr;
};
}  // namespace kernels

class GraphBackend {
 public:
  virtual ~GraphBackend() = default;
  // A KV cache append at the position of the captured step (replays repeat it per token).
  virtual void write_at_position(const kernels::PositionedWriteArgs& args) = 0;
  // Records the work this thread queues on the device from begin to end, without running
  // it; memory allocated meanwhile stays the graph's (fixed addresses) until it is dropped.
  // begin: false when graphs are off (LMX_CUDA_GRAPHS=0, the CUDA profile on). end: null
  // when the capture failed (something waited for the device); keep = false drops it.
  virtual bool begin_graph_capture() = 0;
  virtual std::unique_ptr<DeviceGraph> end_graph_capture(bool keep) = 0;
};

inline GraphBackend* graph_backend_for(Device device) {
  return device.is_cpu() ? nullptr : dynamic_cast<GraphBackend*>(&backend_for(device));
}

}  // namespace lmx
