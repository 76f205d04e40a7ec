// Element types of tensors. Quantized weights are not a dtype (see quantized_weight.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace lmx {

enum class Dtype : uint8_t { f32, f16, bf16, i32, i64, u8, u32, boolean };

inline constexpr size_t dtype_size(Dtype d) {
  switch (d) {
    case Dtype::f32: return 4;
    case Dtype::f16: return 2;
    case Dtype::bf16: return 2;
    case Dtype::i32: return 4;
    case Dtype::i64: return 8;
    case Dtype::u8: return 1;
    case Dtype::u32: return 4;
    case Dtype::boolean: return 1;
  }
  return 0;
}

inline constexpr std::string_view dtype_name(Dtype d) {
  switch (d) {
    case Dtype::f32: return "f32";
    case Dtype::f16: return "f16";
    case Dtype::bf16: return "bf16";
    case Dtype::i32: return "i32";
    case Dtype::i64: return "i64";
    case Dtype::u8: return "u8";
    case Dtype::u32: return "u32";
    case Dtype::boolean: return "bool";
  }
  return "?";
}

inline constexpr bool is_floating(Dtype d) {
  return d == Dtype::f32 || d == Dtype::f16 || d == Dtype::bf16;
}

// Parses lmx names ("bf16") and safetensors names ("BF16"); nullopt when unknown.
std::optional<Dtype> parse_dtype(std::string_view name);
// The safetensors spelling ("F32", "BF16", ...).
std::string_view dtype_safetensors_name(Dtype d);

}  // namespace lmx
