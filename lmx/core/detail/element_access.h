// Scalar loads and stores of any dtype through double / float: used by generic
// (non-hot) paths such as casts, item() and the scalar reference loops.
#pragma once

#include <cstdint>
#include <cstring>

#include "lmx/core/dtype.h"
#include "lmx/core/half.h"

namespace lmx::detail {

inline double load_as_double(const void* base, Dtype dt, int64_t i) {
  switch (dt) {
    case Dtype::f32: return static_cast<const float*>(base)[i];
    case Dtype::f16: return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case Dtype::bf16: return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case Dtype::i32: return static_cast<const int32_t*>(base)[i];
    case Dtype::i64: return static_cast<double>(static_cast<const int64_t*>(base)[i]);
    case Dtype::u8: return static_cast<const uint8_t*>(base)[i];
    case Dtype::u32: return static_cast<const uint32_t*>(base)[i];
    case Dtype::boolean: return static_cast<const uint8_t*>(base)[i] != 0 ? 1.0 : 0.0;
  }
  return 0.0;
}

inline float load_as_float(const void* base, Dtype dt, int64_t i) {
  switch (dt) {
    case Dtype::f32: return static_cast<const float*>(base)[i];
    case Dtype::f16: return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case Dtype::bf16: return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
    default: return static_cast<float>(load_as_double(base, dt, i));
  }
}

inline int64_t load_as_int(const void* base, Dtype dt, int64_t i) {
  switch (dt) {
    case Dtype::i32: return static_cast<const int32_t*>(base)[i];
    case Dtype::i64: return static_cast<const int64_t*>(base)[i];
    case Dtype::u8: return static_cast<const uint8_t*>(base)[i];
    case Dtype::u32: return static_cast<const uint32_t*>(base)[i];
    case Dtype::boolean: return static_cast<const uint8_t*>(base)[i] != 0;
    default: return static_cast<int64_t>(load_as_double(base, dt, i));
  }
}

inline void store_from_double(void* base, Dtype dt, int64_t i, double v) {
  switch (dt) {
    case Dtype::f32: static_cast<float*>(base)[i] = static_cast<float>(v); return;
    case Dtype::f16: static_cast<uint16_t*>(base)[i] = f32_to_f16(static_cast<float>(v)); return;
    case Dtype::bf16: static_cast<uint16_t*>(base)[i] = f32_to_bf16(static_cast<float>(v)); return;
    case Dtype::i32: static_cast<int32_t*>(base)[i] = static_cast<int32_t>(v); return;
    case Dtype::i64: static_cast<int64_t*>(base)[i] = static_cast<int64_t>(v); return;
    case Dtype::u8: static_cast<uint8_t*>(base)[i] = static_cast<uint8_t>(v); return;
    case Dtype::u32: static_cast<uint32_t*>(base)[i] = static_cast<uint32_t>(v); return;
    case Dtype::boolean: static_cast<uint8_t*>(base)[i] = v != 0.0 ? 1 : 0; return;
  }
}

inline void store_from_int(void* base, Dtype dt, int64_t i, int64_t v) {
  switch (dt) {
    case Dtype::i32: static_cast<int32_t*>(base)[i] = static_cast<int32_t>(v); return;
    case Dtype::i64: static_cast<int64_t*>(base)[i] = v; return;
    case Dtype::u8: static_cast<uint8_t*>(base)[i] = static_cast<uint8_t>(v); return;
    case Dtype::u32: static_cast<uint32_t*>(base)[i] = static_cast<uint32_t>(v); return;
    case Dtype::boolean: static_cast<uint8_t*>(base)[i] = v != 0 ? 1 : 0; return;
    default: store_from_double(base, dt, i, static_cast<double>(v)); return;
  }
}

inline bool is_integer_like(Dtype dt) { return !is_floating(dt); }

}  // namespace lmx::detail
