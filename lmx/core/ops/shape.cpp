#include "lmx/core/ops/shape.h"

#include <string>

#include "lmx/base/error.h"

namespace lmx::ops {
namespace {

int normalize(int axis, int ndim, const char* op) {
  if (axis < -ndim || axis >= ndim) {
    throw InvalidArgument(std::string(op) + ": axis " + std::to_string(axis) +
                          " out of range for " + std::to_string(ndim) + " dimensions");
  }
  return axis < 0 ? axis + ndim : axis;
}

}  // namespace

Tensor concat(const std::vector<Tensor>& xs, int axis) {
  if (xs.empty()) throw InvalidArgument("concat: no tensors given");
  const Tensor& first = xs[0];
  axis = normalize(axis, first.ndim(), "concat");
  Shape out_shape = first.shape();
  int64_t total = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    if (!x.defined()) throw InvalidArgument("concat: tensor " + std::to_string(i) + " is undefined");
    if (x.dtype() != first.dtype()) {
      throw InvalidArgument("concat: tensor " + std::to_string(i) + " has dtype " +
                            std::string(dtype_name(x.dtype())) + ", expected " +
                            std::string(dtype_name(first.dtype())));
    }
    bool ok = x.ndim() == first.ndim();
    for (int d = 0; ok && d < x.ndim(); ++d) ok = d == axis || x.dim(d) == first.dim(d);
    if (!ok) {
      throw ShapeError("concat: shape " + shape_str(x.shape()) + " of tensor " +
                       std::to_string(i) + " does not match " + shape_str(first.shape()) +
                       " outside axis " + std::to_string(axis));
    }
    total += x.dim(axis);
  }
  out_shape[axis] = total;
  Tensor out = Tensor::empty(out_shape, first.dtype(), first.device());
  int64_t pos = 0;
  for (const Tensor& x : xs) {
    int64_t n = x.dim(axis);
    if (n > 0) out.slice(axis, pos, pos + n).copy_(x);
    pos += n;
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& xs, int axis) {
  if (xs.empty()) throw InvalidArgument("stack: no tensors given");
  axis = normalize(axis, xs[0].ndim() + 1, "stack");
  std::vector<Tensor> expanded;
  expanded.reserve(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    if (!xs[i].defined()) throw InvalidArgument("stack: tensor " + std::to_string(i) + " is undefined");
    if (xs[i].shape() != xs[0].shape()) {
      throw ShapeError("stack: shape " + shape_str(xs[i].shape()) + " of tensor " +
                       std::to_string(i) + " differs from " + shape_str(xs[0].shape()));
    }
    expanded.push_back(xs[i].unsqueeze(axis));
  }
  return concat(expanded, axis);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int axis) {
  axis = normalize(axis, x.ndim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0) throw InvalidArgument("split: negative size " + std::to_string(s));
    total += s;
  }
  if (total != x.dim(axis)) {
    throw ShapeError("split: sizes sum to " + std::to_string(total) + " but axis " +
                     std::to_string(axis) + " of " + shape_str(x.shape()) + " has " +
                     std::to_string(x.dim(axis)));
  }
  std::vector<Tensor> out;
  int64_t pos = 0;
  for (int64_t s : sizes) {
    out.push_back(x.slice(axis, pos, pos + s));
    pos += s;
  }
  return out;
}

Tensor repeat_interleave(const Tensor& x, int64_t repeats, int axis) {
  axis = normalize(axis, x.ndim(), "repeat_interleave");
  if (repeats < 1) {
    throw InvalidArgument("repeat_interleave: repeats must be >= 1, got " + std::to_string(repeats));
  }
  if (repeats == 1) return x;
  Shape expanded = x.shape();
  expanded.insert(expanded.begin() + axis + 1, repeats);
  Shape out_shape = x.shape();
  out_shape[axis] *= repeats;
  return x.unsqueeze(axis + 1).expand(expanded).contiguous().reshape(out_shape);
}

}  // namespace lmx::ops
