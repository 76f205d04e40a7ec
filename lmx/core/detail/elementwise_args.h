// The arguments of the backend's generic element-wise kernels (kernel_args.h,
// ElementwiseArgs) for an op on a device other than the CPU: the output and its inputs
// (already expanded to the output's shape), dims merged as the CPU loops merge them.
#pragma once

#include <array>
#include <string>

#include "lmx/base/error.h"
#include "lmx/core/detail/strided_loop.h"
#include "lmx/core/kernel_args.h"
#include "lmx/core/tensor.h"

namespace lmx::detail {

template <size_t N>
kernels::ElementwiseArgs elementwise_args(const Tensor& out, const std::array<const Tensor*, N>& ins,
                                          const char* op) {
  std::array<const Shape*, N + 1> strides{};
  std::array<int64_t, N + 1> offsets{};  // zero: each operand's data pointer carries its offset
  strides[0] = &out.strides();
  for (size_t k = 0; k < N; ++k) strides[k + 1] = &ins[k]->strides();
  const StridedLayout<N + 1> layout = make_layout<N + 1>(out.shape(), strides, offsets);
  if (layout.shape.size() > static_cast<size_t>(kernels::kMaxRank)) {
    throw Unsupported(std::string(op) + ": " + std::to_string(layout.shape.size()) +
                      " dims that do not merge (at most " + std::to_string(kernels::kMaxRank) +
                      " on this device)");
  }
  kernels::ElementwiseArgs a;
  a.rank = static_cast<int>(layout.shape.size());
  a.numel = out.numel();
  for (int d = 0; d < a.rank; ++d) a.shape[d] = layout.shape[static_cast<size_t>(d)];
  auto operand = [&](kernels::StridedOperand& o, const Tensor& t, size_t k) {
    o.data = t.raw_data();
    o.dtype = t.dtype();
    for (int d = 0; d < a.rank; ++d) o.strides[d] = layout.strides[k][static_cast<size_t>(d)];
  };
  operand(a.out, out, 0);
  for (size_t k = 0; k < N; ++k) operand(a.in[k], *ins[k], k + 1);
  return a;
}

}  // namespace lmx::detail
