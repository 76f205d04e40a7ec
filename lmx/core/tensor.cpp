#include "lmx/core/tensor.h"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "lmx/base/thread_pool.h"
#include "lmx/core/backend.h"
#include "lmx/core/detail/element_access.h"
#include "lmx/core/detail/elementwise_args.h"
#include "lmx/core/detail/strided_loop.h"
#include "lmx/base/error.h"


namespace lmx {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw ShapeError("negative dimension in shape " + shape_str(shape));
    if (d != 0 && n > INT64_MAX / d) {
      throw ShapeError("shape " + shape_str(shape) + " has more elements than fit in int64");
    }
    n *= d;
  }
  return n;
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    st[i] = s;
    s *= std::max<int64_t>(shape[i], 1);
  }
  return st;
}

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset,
               Dtype dtype)
    : storage_(std::move(storage)),
      shape_(std::move(shape)),
      strides_(std::move(strides)),
      offset_(offset),
      numel_(shape_numel(shape_)),
      dtype_(dtype) {}

Tensor Tensor::empty(const Shape& shape, Dtype dtype, Device device) {
  int64_t n = shape_numel(shape);
  if (static_cast<uint64_t>(n) > (uint64_t{1} << 62) / dtype_size(dtype)) {
    throw ShapeError("Tensor::empty: shape " + shape_str(shape) + " is too large");
  }
  auto storage = Storage::allocate(static_cast<size_t>(n) * dtype_size(dtype), device);
  return Tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

Tensor Tensor::zeros(const Shape& shape, Dtype dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}

Tensor Tensor::full(const Shape& shape, double value, Dtype dtype, Device device) {
  if (!device.is_cpu()) {
    Tensor d = empty(shape, dtype, device);
    if (d.numel() > 0) backend_for(device).fill(d.raw_data(), dtype, d.numel(), value);
    return d;
  }
  Tensor t = empty(shape, Dtype(dtype), Device::cpu());
  if (value == 0.0) {
    std::memset(t.raw_data(), 0, t.nbytes());
  } else {
    void* p = t.raw_data();
    for (int64_t i = 0; i < t.numel(); ++i) detail::store_from_double(p, dtype, i, value);
  }
  return device.is_cpu() ? t : t.to(device);
}

Tensor Tensor::from_floats(const std::vector<float>& values, const Shape& shape, Dtype dtype) {
  Tensor t = empty(shape, dtype);
  if (static_cast<int64_t>(values.size()) != t.numel()) {
    throw ShapeError("Tensor::from_floats: " + std::to_string(values.size()) +
                     " values for shape " + shape_str(shape));
  }
  void* p = t.raw_data();
  for (int64_t i = 0; i < t.numel(); ++i) detail::store_from_double(p, dtype, i, values[i]);
  return t;
}

Tensor Tensor::wrap(void* data, const Shape& shape, Dtype dtype, std::shared_ptr<const void> owner,
                    Device device) {
  int64_t n = shape_numel(shape);
  auto storage = Storage::wrap(data, static_cast<size_t>(n) * dtype_size(dtype), device,
                               std::move(owner));
  return Tensor(std::move(storage), shape, contiguous_strides(shape), 0, dtype);
}

Tensor Tensor::arange(int64_t n, Dtype dtype) {
  Tensor t = empty({n}, dtype);
  void* p = t.raw_data();
  for (int64_t i = 0; i < n; ++i) detail::store_from_int(p, dtype, i, i);
  return t;
}

int Tensor::normalize_axis(int axis, int ndim_plus, const char* op) const {
  int n = ndim() + ndim_plus;
  if (axis < -n || axis >= n) {
    throw InvalidArgument(std::string(op) + ": axis " + std::to_string(axis) +
                          " is out of range for a tensor of shape " + shape_str(shape_));
  }
  return axis < 0 ? axis + n : axis;
}

int64_t Tensor::dim(int axis) const { return shape_[normalize_axis(axis, 0, "dim")]; }

bool Tensor::is_contiguous() const {
  int64_t expect = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expect) return false;
    expect *= shape_[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  if (!storage_) throw InvalidArgument("data access on an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<int64_t>(itemsize());
}

void Tensor::check_dtype(Dtype want, const char* what) const {
  if (dtype_ != want) {
    throw InvalidArgument(std::string(what) + ": tensor has dtype " +
                          std::string(dtype_name(dtype_)) + ", accessed as " +
                          std::string(dtype_name(want)));
  }
}

double Tensor::item_as_double() const {
  if (numel_ != 1) {
    throw InvalidArgument("item: tensor of shape " + shape_str(shape_) + " has " +
                          std::to_string(numel_) + " elements, not 1");
  }
  if (!device().is_cpu()) return to(Device::cpu()).item_as_double();
  return detail::load_as_double(raw_data(), dtype_, 0);
}

std::vector<float> Tensor::to_float_vector() const {
  Tensor c = to(Device::cpu()).contiguous();
  std::vector<float> out(static_cast<size_t>(numel_));
  const void* p = c.raw_data();
  for (int64_t i = 0; i < numel_; ++i) out[i] = detail::load_as_float(p, dtype_, i);
  return out;
}

std::vector<int64_t> Tensor::to_int_vector() const {
  Tensor c = to(Device::cpu()).contiguous();
  std::vector<int64_t> out(static_cast<size_t>(numel_));
  const void* p = c.raw_data();
  for (int64_t i = 0; i < numel_; ++i) out[i] = detail::load_as_int(p, dtype_, i);
  return out;
}

Tensor Tensor::reshape(const Shape& new_shape) const {
  Shape shape = new_shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) throw ShapeError("reshape: more than one -1 in " + shape_str(new_shape));
      infer = static_cast<int>(i);
    } else if (shape[i] < 0) {
      throw ShapeError("reshape: negative dimension in " + shape_str(new_shape));
    } else {
      known = shape_numel({known, shape[i]});
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel_ % known != 0) {
      throw ShapeError("reshape: cannot reshape " + shape_str(shape_) + " into " +
                       shape_str(new_shape));
    }
    shape[infer] = numel_ / known;
  }
  if (shape_numel(shape) != numel_) {
    throw ShapeError("reshape: cannot reshape " + shape_str(shape_) + " (" +
                     std::to_string(numel_) + " elements) into " + shape_str(new_shape));
  }
  if (is_contiguous()) return Tensor(storage_, shape, contiguous_strides(shape), offset_, dtype_);
  return contiguous().reshape(shape);
}

Tensor Tensor::transpose(int a, int b) const {
  a = normalize_axis(a, 0, "transpose");
  b = normalize_axis(b, 0, "transpose");
  Shape sh = shape_, st = strides_;
  std::swap(sh[a], sh[b]);
  std::swap(st[a], st[b]);
  return Tensor(storage_, sh, st, offset_, dtype_);
}

Tensor Tensor::permute(const std::vector<int>& axes) const {
  if (static_cast<int>(axes.size()) != ndim()) {
    throw InvalidArgument("permute: " + std::to_string(axes.size()) + " axes for a tensor of shape " +
                          shape_str(shape_));
  }
  Shape sh(axes.size()), st(axes.size());
  std::vector<bool> used(axes.size(), false);
  for (size_t i = 0; i < axes.size(); ++i) {
    int a = normalize_axis(axes[i], 0, "permute");
    if (used[a]) throw InvalidArgument("permute: axis " + std::to_string(a) + " repeated");
    used[a] = true;
    sh[i] = shape_[a];
    st[i] = strides_[a];
  }
  return Tensor(storage_, sh, st, offset_, dtype_);
}

Tensor Tensor::slice(int axis, int64_t start, int64_t end, int64_t step) const {
  axis = normalize_axis(axis, 0, "slice");
  if (step < 1) throw InvalidArgument("slice: step must be >= 1, got " + std::to_string(step));
  int64_t n = shape_[axis];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, 0, n);
  int64_t len = end > start ? (end - start + step - 1) / step : 0;
  Shape sh = shape_, st = strides_;
  sh[axis] = len;
  st[axis] = strides_[axis] * step;
  return Tensor(storage_, sh, st, offset_ + start * strides_[axis], dtype_);
}

Tensor Tensor::select(int axis, int64_t index) const {
  axis = normalize_axis(axis, 0, "select");
  int64_t n = shape_[axis];
  if (index < -n || index >= n) {
    throw InvalidArgument("select: index " + std::to_string(index) + " out of range for axis " +
                          std::to_string(axis) + " of shape " + shape_str(shape_));
  }
  if (index < 0) index += n;
  Shape sh = shape_, st = strides_;
  int64_t off = offset_ + index * strides_[axis];
  sh.erase(sh.begin() + axis);
  st.erase(st.begin() + axis);
  return Tensor(storage_, sh, st, off, dtype_);
}

Tensor Tensor::squeeze(int axis) const {
  axis = normalize_axis(axis, 0, "squeeze");
  if (shape_[axis] != 1) {
    throw ShapeError("squeeze: axis " + std::to_string(axis) + " of shape " + shape_str(shape_) +
                     " is not 1");
  }
  return select(axis, 0);
}

Tensor Tensor::unsqueeze(int axis) const {
  axis = normalize_axis(axis, 1, "unsqueeze");
  Shape sh = shape_, st = strides_;
  int64_t stride = axis < ndim() ? strides_[axis] * shape_[axis] : 1;
  sh.insert(sh.begin() + axis, 1);
  st.insert(st.begin() + axis, stride);
  return Tensor(storage_, sh, st, offset_, dtype_);
}

Tensor Tensor::expand(const Shape& shape) const {
  if (shape.size() < shape_.size()) {
    throw ShapeError("expand: cannot expand " + shape_str(shape_) + " to " + shape_str(shape));
  }
  size_t lead = shape.size() - shape_.size();
  Shape st(shape.size(), 0);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) continue;
    int64_t have = shape_[i - lead];
    if (have == shape[i]) {
      st[i] = strides_[i - lead];
    } else if (have != 1) {
      throw ShapeError("expand: cannot expand " + shape_str(shape_) + " to " + shape_str(shape));
    }
  }
  shape_numel(shape);
  return Tensor(storage_, shape, st, offset_, dtype_);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape_, dtype_, device());
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(Dtype dtype) const {
  if (dtype == dtype_) return *this;
  Tensor out = empty(shape_, dtype, device());
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  // Host <-> device copies go through the device's backend, from a contiguous source
  // (a strided device tensor is gathered on its device first).
  Tensor src = contiguous();
  if (!dev.is_cpu() && !src.device().is_cpu() ) {
    throw Unsupported("Tensor::to: copies between two devices (" + src.device().str() + " -> " +
                      dev.str() + ") go through the host for now: use .to(Device::cpu()) first");
  }
  Tensor out = empty(shape_, dtype_, dev);
  const bool to_device = !dev.is_cpu();
  backend_for(to_device ? dev : src.device())
      .copy_bytes(out.raw_data(), src.raw_data(), nbytes(),
                  to_device ? CopyDirection::host_to_device : CopyDirection::device_to_host);
  return out;
}

void Tensor::copy_from_host(const void* src, size_t bytes) {
  if (!is_contiguous() || bytes != nbytes()) {
    throw InvalidArgument("copy_from_host: " + std::to_string(bytes) + " bytes into tensor " +
                          str());
  }
  if (!device().is_cpu()) throw Unsupported("copy_from_host: device " + device().str());
  if (bytes) std::memcpy(raw_data(), src, bytes);
}

void Tensor::copy_(const Tensor& src) {
  if (src.shape_ != shape_) {
    throw ShapeError("copy: source shape " + shape_str(src.shape_) + " != destination shape " +
                     shape_str(shape_));
  }
  if (!device().is_cpu() || !src.device().is_cpu()) {
    if (numel_ == 0) return;
    if (device() == src.device()) {
      backend_for(device()).copy_strided(detail::elementwise_args<1>(*this, {&src}, "copy"));
    } else if (src.device().is_cpu() || device().is_cpu()) {
      // Across host and device: move src as it is (contiguous), then convert and scatter
      // on this tensor's side.
      copy_(src.to(device()));
    } else {
      throw Unsupported("copy: between two devices (" + src.device().str() + " -> " + device().str() +
                        ") go through the host for now");
    }
    return;
  }
  if (numel_ == 0) return;
  auto layout = detail::make_layout<2>(shape_, {&strides_, &src.strides_}, {offset_, src.offset_});
  char* dst_base = static_cast<char*>(storage_->data());
  const char* src_base = static_cast<const char*>(src.storage_->data());
  const Dtype dt = dtype_, st = src.dtype_;
  const size_t isz = itemsize();
  auto body = [&](int64_t b, int64_t e) {
    detail::strided_for(layout, b, e, [&](const auto& off, int64_t n, const auto& inc) {
      if (dt == st) {
        if (inc[0] == 1 && inc[1] == 1) {
          std::memcpy(dst_base + off[0] * isz, src_base + off[1] * isz, n * isz);
        } else {
          for (int64_t i = 0; i < n; ++i) {
            std::memcpy(dst_base + (off[0] + i * inc[0]) * isz, src_base + (off[1] + i * inc[1]) * isz,
                        isz);
          }
        }
      } else if (detail::is_integer_like(dt) && detail::is_integer_like(st)) {
        for (int64_t i = 0; i < n; ++i) {
          detail::store_from_int(dst_base, dt, off[0] + i * inc[0],
                                 detail::load_as_int(src_base, st, off[1] + i * inc[1]));
        }
      } else {
        for (int64_t i = 0; i < n; ++i) {
          detail::store_from_double(dst_base, dt, off[0] + i * inc[0],
                                    detail::load_as_double(src_base, st, off[1] + i * inc[1]));
        }
      }
    });
  };
  int64_t outer = detail::outer_count(layout);
  if (numel_ >= (int64_t{1} << 16) && outer > 1) {
    ThreadPool::global().parallel_for(outer, std::max<int64_t>(1, (1 << 14) / layout.shape.back()), body);
  } else {
    body(0, outer);
  }
}

std::string Tensor::str() const {
  std::ostringstream os;
  os << "Tensor(" << dtype_name(dtype_) << ", " << shape_str(shape_) << ", " << device().str()
     << ")";
  return os.str();
}

}  // namespace lmx
