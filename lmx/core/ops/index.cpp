#include "lmx/core/ops/index.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "lmx/core/backend.h"
#include "lmx/core/detail/element_access.h"
#include "lmx/core/step_values.h"
#include "lmx/base/error.h"

namespace lmx::ops {
namespace {

void check_indices(const Tensor& indices, const char* op) {
  if (!indices.defined()) throw InvalidArgument(std::string(op) + ": undefined indices");
  if (is_floating(indices.dtype()) || indices.dtype() == Dtype::boolean) {
    throw InvalidArgument(std::string(op) + ": indices must be integers, got " +
                          std::string(dtype_name(indices.dtype())));
  }
}

}  // namespace

Tensor take(const Tensor& x, const Tensor& indices, int axis) {
  if (!x.defined()) throw InvalidArgument("take: undefined tensor argument");
  check_indices(indices, "take");
  const int nd = x.ndim();
  if (axis < -nd || axis >= nd) {
    throw InvalidArgument("take: axis " + std::to_string(axis) + " out of range for shape " +
                          shape_str(x.shape()));
  }
  if (axis < 0) axis += nd;
  const int64_t n = x.dim(axis);
  if (axis == 0 && indices.device() == x.device() && indices.dtype() == Dtype::i64 && indices.is_contiguous() &&
      step_values(x.device())) {
    // A captured decode step: the ids were checked before they went to the device.
    Shape out_shape = indices.shape();
    for (int d = 1; d < nd; ++d) out_shape.push_back(x.dim(d));
    Tensor src = x.contiguous();
    Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
    const int64_t count = indices.numel(), row = n == 0 ? 0 : src.numel() / n;
    if (count > 0 && row > 0) {
      backend_for(x.device())
          .gather_rows(src.raw_data(), row * static_cast<int64_t>(x.itemsize()), indices.data<int64_t>(), count,
                       out.raw_data());
    }
    return out;
  }
  std::vector<int64_t> idx = indices.to_int_vector();
  for (size_t i = 0; i < idx.size(); ++i) {
    if (idx[i] < 0 || idx[i] >= n) {
      throw InvalidArgument("take: index " + std::to_string(idx[i]) + " at position " +
                            std::to_string(i) + " is out of range [0, " + std::to_string(n) +
                            ") for axis " + std::to_string(axis) + " of shape " +
                            shape_str(x.shape()));
    }
  }
  Shape out_shape;
  for (int d = 0; d < axis; ++d) out_shape.push_back(x.dim(d));
  for (int64_t d : indices.shape()) out_shape.push_back(d);
  for (int d = axis + 1; d < nd; ++d) out_shape.push_back(x.dim(d));
  // Move `axis` first, gather contiguous rows, then move the index dims back in place.
  std::vector<int> perm{axis};
  for (int d = 0; d < nd; ++d)
    if (d != axis) perm.push_back(d);
  Tensor src = x.permute(perm).contiguous();
  const int64_t row = n == 0 ? 0 : src.numel() / n;
  const size_t row_bytes = static_cast<size_t>(row) * x.itemsize();
  Shape gathered_shape{static_cast<int64_t>(idx.size())};
  for (int d = 0; d < nd; ++d)
    if (d != axis) gathered_shape.push_back(x.dim(d));
  Tensor gathered = Tensor::empty(gathered_shape, x.dtype(), x.device());
  if (!x.device().is_cpu()) {
    // The checked ids go to the device once; the rows never leave it.
    Tensor ids = Tensor::empty({static_cast<int64_t>(idx.size())}, Dtype::i64);
    std::copy(idx.begin(), idx.end(), ids.data<int64_t>());
    Tensor device_ids = ids.to(x.device());
    if (!idx.empty() && row_bytes > 0) {
      backend_for(x.device())
          .gather_rows(src.raw_data(), static_cast<int64_t>(row_bytes), device_ids.data<int64_t>(),
                       static_cast<int64_t>(idx.size()), gathered.raw_data());
    }
  } else {
    const char* s = static_cast<const char*>(src.raw_data());
    char* o = static_cast<char*>(gathered.raw_data());
    for (size_t i = 0; i < idx.size(); ++i) {
      std::memcpy(o + i * row_bytes, s + static_cast<size_t>(idx[i]) * row_bytes, row_bytes);
    }
  }
  // gathered: [I, other dims...]; reshape I to indices' shape, then permute into place.
  Shape split_shape = indices.shape();
  for (int d = 0; d < nd; ++d)
    if (d != axis) split_shape.push_back(x.dim(d));
  Tensor g = gathered.reshape(split_shape);
  const int ni = indices.ndim();
  std::vector<int> back;
  for (int d = 0; d < axis; ++d) back.push_back(ni + d);
  for (int d = 0; d < ni; ++d) back.push_back(d);
  for (int d = axis + 1; d < nd; ++d) back.push_back(ni + d - 1);
  Tensor out = g.permute(back);
  return out.is_contiguous() ? out : out.contiguous();
}

Tensor take_along_last_axis(const Tensor& x, const Tensor& indices) {
  if (!x.defined()) throw InvalidArgument("take_along_last_axis: undefined tensor argument");
  check_indices(indices, "take_along_last_axis");
  if (x.ndim() != indices.ndim() || x.ndim() == 0) {
    throw ShapeError("take_along_last_axis: x " + shape_str(x.shape()) + " and indices " +
                     shape_str(indices.shape()) + " must have the same rank (>= 1)");
  }
  for (int d = 0; d + 1 < x.ndim(); ++d) {
    if (x.dim(d) != indices.dim(d)) {
      throw ShapeError("take_along_last_axis: x " + shape_str(x.shape()) + " and indices " +
                       shape_str(indices.shape()) + " differ outside the last axis");
    }
  }
  if (!x.device().is_cpu()) {
    throw Unsupported("take_along_last_axis: no kernel for device " + x.device().str());
  }
  Tensor xc = x.contiguous();
  std::vector<int64_t> idx = indices.to_int_vector();
  const int64_t n = x.dim(-1), k = indices.dim(-1);
  Tensor out = Tensor::empty(indices.shape(), x.dtype());
  const int64_t rows = k == 0 ? 0 : static_cast<int64_t>(idx.size()) / k;
  const size_t isz = x.itemsize();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < k; ++j) {
      int64_t i = idx[r * k + j];
      if (i < 0 || i >= n) {
        throw InvalidArgument("take_along_last_axis: index " + std::to_string(i) +
                              " out of range [0, " + std::to_string(n) + ")");
      }
      std::memcpy(static_cast<char*>(out.raw_data()) + (r * k + j) * isz,
                  static_cast<const char*>(xc.raw_data()) + (r * n + i) * isz, isz);
    }
  }
  return out;
}

}  // namespace lmx::ops
