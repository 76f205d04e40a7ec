#include "lmx/io/safetensors_tensor.h"

#include <cstring>

namespace lmx::io {

Tensor tensor_of(const TensorInfo& info, std::shared_ptr<const void> owner) {
  if (info.aligned) return Tensor::wrap(const_cast<std::byte*>(info.data), info.shape, info.dtype, std::move(owner));
  Tensor t = Tensor::empty(info.shape, info.dtype);
  if (info.nbytes > 0) std::memcpy(t.raw_data(), info.data, info.nbytes);
  return t;
}

}  // namespace lmx::io
