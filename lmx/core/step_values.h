// The values of a decode step that change from token to token, kept in device memory
// while a step is captured as a device graph (lmx/generate/decode_graph.h): the graph
// replays the same launches for every token, so the ops whose arguments would carry the
// token's position read it from `position` instead. Set for the capturing thread only, by
// StepScope; outside a scope every op takes its values from the host as usual.
//
// The ops that consult the scope (one query row of batch 1 on `device`):
// - take: indices already on the table's device are used as they are (the caller checked
//   them; reading them back would wait for the device);
// - rope at offset == host_position reads the position from `position`;
// - scaled_dot_product_attention of one query at q_offset == host_position over
//   host_position + 1 keys reads the key count (*position + 1) from the device and may
//   read keys up to kv_capacity (the cache buffer's length, fixed while the graph lives);
// - the KV cache append (lmx/generate/kv_buffer.cpp) writes at *position.
#pragma once

#include <cstdint>

#include "lmx/core/device.h"

namespace lmx {

struct StepValues {
  Device device;
  const int64_t* position = nullptr;  // on `device`: the step's (one) token position
  int64_t host_position = 0;          // its value when the step was captured
  int64_t kv_capacity = 0;            // positions the KV buffers hold
};

namespace detail {
inline thread_local const StepValues* current_step_values = nullptr;
}

// The active step of this thread on `device`, or null.
inline const StepValues* step_values(Device device) {
  const StepValues* s = detail::current_step_values;
  return s && s->device == device ? s : nullptr;
}

class StepScope {
 public:
  explicit StepScope(const StepValues& v) : previous_(detail::current_step_values) { detail::current_step_values = &v; }
  ~StepScope() { detail::current_step_values = previous_; }
  StepScope(const StepScope&) = delete;
  StepScope& operator=(const StepScope&) = delete;

 private:
  const StepValues* previous_;
};

}  // namespace lmx
