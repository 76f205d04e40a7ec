#include "lmx/generate/kv_buffer.h"

#include "lmx/base/error.h"
#include "lmx/core/ops/step_ops.h"
#include "lmx/core/step_values.h"

namespace lmx::generate {

Dtype kv_storage_dtype(const Tensor& keys) {
  return keys.dtype() == Dtype::bf16 && !keys.device().is_cpu() ? Dtype::bf16 : Dtype::f32;
}

void reserve_kv(Tensor& keys_buf, Tensor& values_buf, int64_t offset, const Tensor& keys, const Tensor& values,
                int64_t step) {
  const int64_t n = keys.dim(2);
  const int64_t capacity = keys_buf.defined() ? keys_buf.dim(2) : 0;
  if (offset + n > capacity) {
    const int64_t grown = (offset + n + step - 1) / step * step;
    const Dtype dt = keys_buf.defined() ? keys_buf.dtype() : kv_storage_dtype(keys);
    Tensor k = Tensor::zeros({keys.dim(0), keys.dim(1), grown, keys.dim(3)}, dt, keys.device());
    Tensor v = Tensor::zeros({values.dim(0), values.dim(1), grown, values.dim(3)}, dt, values.device());
    if (offset > 0) {
      k.slice(2, 0, offset).copy_(keys_buf.slice(2, 0, offset));
      v.slice(2, 0, offset).copy_(values_buf.slice(2, 0, offset));
    }
    keys_buf = k;
    values_buf = v;
  }
}

std::pair<Tensor, Tensor> append_kv(Tensor& keys_buf, Tensor& values_buf, int64_t& offset, const Tensor& keys,
                                    const Tensor& values, int64_t step) {
  const int64_t n = keys.dim(2);
  reserve_kv(keys_buf, values_buf, offset, keys, values, step);
  if (const StepValues* sv = step_values(keys_buf.device())) {
    if (offset != sv->host_position) throw Unsupported("kv cache: a captured decode step appends at its position only");
    // A captured decode step: the graph's replays write at each token's own position.
    ops::write_at_step_position(keys_buf, keys);
    ops::write_at_step_position(values_buf, values);
  } else {
    keys_buf.slice(2, offset, offset + n).copy_(keys);
    values_buf.slice(2, offset, offset + n).copy_(values);
  }
  offset += n;
  return {keys_buf.slice(2, 0, offset), values_buf.slice(2, 0, offset)};
}

}  // namespace lmx::generate
