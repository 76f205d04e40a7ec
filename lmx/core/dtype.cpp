#include "lmx/core/dtype.h"

namespace lmx {

std::optional<Dtype> parse_dtype(std::string_view n) {
  if (n == "f32" || n == "F32" || n == "float32") return Dtype::f32;
  if (n == "f16" || n == "F16" || n == "float16") return Dtype::f16;
  if (n == "bf16" || n == "BF16" || n == "bfloat16") return Dtype::bf16;
  if (n == "i32" || n == "I32" || n == "int32") return Dtype::i32;
  if (n == "i64" || n == "I64" || n == "int64") return Dtype::i64;
  if (n == "u8" || n == "U8" || n == "uint8") return Dtype::u8;
  if (n == "u32" || n == "U32" || n == "uint32") return Dtype::u32;
  if (n == "bool" || n == "BOOL") return Dtype::boolean;
  return std::nullopt;
}

std::string_view dtype_safetensors_name(Dtype d) {
  switch (d) {
    case Dtype::f32: return "F32";
    case Dtype::f16: return "F16";
    case Dtype::bf16: return "BF16";
    case Dtype::i32: return "I32";
    case Dtype::i64: return "I64";
    case Dtype::u8: return "U8";
    case Dtype::u32: return "U32";
    case Dtype::boolean: return "BOOL";
  }
  return "?";
}

}  // namespace lmx
