// Tensor: a cheap value handle over shared storage (shape, strides, offset, dtype,
// device). Views (reshape of contiguous data, transpose, slice, expand) share storage;
// compute lives in lmx::ops (lmx/core/ops/*.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "lmx/core/device.h"
#include "lmx/core/dtype.h"
#include "lmx/core/half.h"
#include "lmx/core/storage.h"

namespace lmx {

using Shape = std::vector<int64_t>;

template <typename T>
constexpr Dtype dtype_of() {
  if constexpr (std::is_same_v<T, float>) return Dtype::f32;
  else if constexpr (std::is_same_v<T, Half>) return Dtype::f16;
  else if constexpr (std::is_same_v<T, BFloat16>) return Dtype::bf16;
  else if constexpr (std::is_same_v<T, int32_t>) return Dtype::i32;
  else if constexpr (std::is_same_v<T, int64_t>) return Dtype::i64;
  else if constexpr (std::is_same_v<T, uint8_t>) return Dtype::u8;
  else if constexpr (std::is_same_v<T, uint32_t>) return Dtype::u32;
  else if constexpr (std::is_same_v<T, bool>) return Dtype::boolean;
  else static_assert(sizeof(T) == 0, "no lmx dtype for this C++ type");
}

// Product of the dimensions; throws ShapeError on negative sizes or int64 overflow.
int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);
// Row-major strides (in elements) of a contiguous tensor of this shape.
Shape contiguous_strides(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;  // undefined tensor

  // Factories -----------------------------------------------------------------
  static Tensor empty(const Shape& shape, Dtype dtype, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, Dtype dtype = Dtype::f32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, Dtype dtype = Dtype::f32,
                     Device device = Device::cpu());
  // Copies `values` (numel(shape) of them) into a new CPU tensor.
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape) {
    Tensor t = empty(shape, dtype_of<T>());
    t.copy_from_host(values.data(), values.size() * sizeof(T));
    return t;
  }
  // Converts float values to `dtype` (round to nearest even for f16/bf16).
  static Tensor from_floats(const std::vector<float>& values, const Shape& shape, Dtype dtype);
  // Wraps memory owned elsewhere (e.g. an mmap'd weight file) without copying.
  static Tensor wrap(void* data, const Shape& shape, Dtype dtype, std::shared_ptr<const void> owner,
                     Device device = Device::cpu());
  // 0, 1, ..., n-1.
  static Tensor arange(int64_t n, Dtype dtype = Dtype::i32);

  // Metadata ------------------------------------------------------------------
  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t offset() const { return offset_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  // Size of dimension `axis` (negative counts from the end); throws on a bad axis.
  int64_t dim(int axis) const;
  int64_t numel() const { return numel_; }
  Dtype dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu(); }
  size_t itemsize() const { return dtype_size(dtype_); }
  size_t nbytes() const { return static_cast<size_t>(numel_) * itemsize(); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  // True when no other tensor handle shares this storage.
  bool is_unique() const { return storage_.use_count() == 1; }

  // Data access (CPU) ------------------------------------------------------------
  // Pointer to the first element; T must match the dtype.
  template <typename T>
  T* data() const {
    check_dtype(dtype_of<T>(), "data");
    return static_cast<T*>(raw_data());
  }
  void* raw_data() const;
  // The single element of a one-element tensor, converted to T.
  template <typename T>
  T item() const {
    return static_cast<T>(item_as_double());
  }
  double item_as_double() const;
  // All elements (in logical row-major order) converted to float / int64.
  std::vector<float> to_float_vector() const;
  std::vector<int64_t> to_int_vector() const;

  // Views (share storage) --------------------------------------------------------
  // Reshape: a view when the layout allows it, otherwise a contiguous copy. One
  // dimension may be -1.
  Tensor reshape(const Shape& shape) const;
  Tensor transpose(int a, int b) const;
  Tensor permute(const std::vector<int>& axes) const;
  // Elements start, start+step, ... < end along `axis` (negative start/end count from
  // the end, clamped as Python slicing does); step >= 1.
  Tensor slice(int axis, int64_t start, int64_t end, int64_t step = 1) const;
  // One index along `axis`, which is removed.
  Tensor select(int axis, int64_t index) const;
  Tensor squeeze(int axis) const;
  Tensor unsqueeze(int axis) const;
  // Broadcast view to `shape` (size-1 dims get stride 0; new leading dims allowed).
  Tensor expand(const Shape& shape) const;
  Tensor flatten() const { return reshape({numel_}); }

  // Copies ------------------------------------------------------------------------
  Tensor contiguous() const;  // itself when already contiguous
  Tensor clone() const;       // always a fresh contiguous copy
  Tensor to(Dtype dtype) const;
  Tensor to(Device device) const;
  // Copies bytes from host memory into this (contiguous) tensor.
  void copy_from_host(const void* src, size_t bytes);
  // Copies `src` (same shape, any dtype, any layout) into this tensor's elements.
  void copy_(const Tensor& src);

  std::string str() const;  // "Tensor(f32, [2, 3], cpu)"

  // Low-level constructor used by ops: a view over `storage`.
  Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, Dtype dtype);

 private:
  void check_dtype(Dtype want, const char* what) const;
  int normalize_axis(int axis, int ndim_plus, const char* op) const;

  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;  // in elements
  int64_t offset_ = 0;  // in elements
  int64_t numel_ = 0;
  Dtype dtype_ = Dtype::f32;
};

}  // namespace lmx
