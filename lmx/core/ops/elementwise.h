// Element-wise ops with NumPy broadcasting. Floating inputs compute in f32 and store
// in the result dtype; mixed float dtypes promote to f32; integer ops stay integer.
#pragma once

#include "lmx/core/tensor.h"

namespace lmx::ops {

enum class UnaryOp {
  neg, abs, square, exp, log, sqrt, rsqrt, tanh, sigmoid, silu, gelu, gelu_tanh, softplus, sin,
  cos, erf
};
enum class BinaryOp { add, sub, mul, div, maximum, minimum, pow };
enum class CompareOp { eq, ne, lt, le, gt, ge };

Tensor unary(UnaryOp op, const Tensor& x);
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor compare(CompareOp op, const Tensor& a, const Tensor& b);  // bool result

// The broadcast shape of two shapes; throws ShapeError naming `op` when they clash.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// The dtype binary ops produce for these inputs.
Dtype promote_types(Dtype a, Dtype b);

inline Tensor neg(const Tensor& x) { return unary(UnaryOp::neg, x); }
inline Tensor abs(const Tensor& x) { return unary(UnaryOp::abs, x); }
inline Tensor square(const Tensor& x) { return unary(UnaryOp::square, x); }
inline Tensor exp(const Tensor& x) { return unary(UnaryOp::exp, x); }
inline Tensor log(const Tensor& x) { return unary(UnaryOp::log, x); }
inline Tensor sqrt(const Tensor& x) { return unary(UnaryOp::sqrt, x); }
inline Tensor rsqrt(const Tensor& x) { return unary(UnaryOp::rsqrt, x); }
inline Tensor tanh(const Tensor& x) { return unary(UnaryOp::tanh, x); }
inline Tensor sigmoid(const Tensor& x) { return unary(UnaryOp::sigmoid, x); }
inline Tensor silu(const Tensor& x) { return unary(UnaryOp::silu, x); }
// Exact GELU (erf form).
inline Tensor gelu(const Tensor& x) { return unary(UnaryOp::gelu, x); }
// GELU with the tanh approximation ("gelu_pytorch_tanh").
inline Tensor gelu_tanh(const Tensor& x) { return unary(UnaryOp::gelu_tanh, x); }
inline Tensor softplus(const Tensor& x) { return unary(UnaryOp::softplus, x); }
inline Tensor sin(const Tensor& x) { return unary(UnaryOp::sin, x); }
inline Tensor cos(const Tensor& x) { return unary(UnaryOp::cos, x); }
inline Tensor erf(const Tensor& x) { return unary(UnaryOp::erf, x); }

inline Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::add, a, b); }
inline Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::sub, a, b); }
inline Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::mul, a, b); }
inline Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::div, a, b); }
inline Tensor maximum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::maximum, a, b); }
inline Tensor minimum(const Tensor& a, const Tensor& b) { return binary(BinaryOp::minimum, a, b); }
inline Tensor pow(const Tensor& a, const Tensor& b) { return binary(BinaryOp::pow, a, b); }

// Tensor-scalar forms keep the tensor's dtype.
Tensor binary(BinaryOp op, const Tensor& a, double b);
inline Tensor add(const Tensor& a, double b) { return binary(BinaryOp::add, a, b); }
inline Tensor sub(const Tensor& a, double b) { return binary(BinaryOp::sub, a, b); }
inline Tensor mul(const Tensor& a, double b) { return binary(BinaryOp::mul, a, b); }
inline Tensor div(const Tensor& a, double b) { return binary(BinaryOp::div, a, b); }
inline Tensor pow(const Tensor& a, double b) { return binary(BinaryOp::pow, a, b); }

inline Tensor equal(const Tensor& a, const Tensor& b) { return compare(CompareOp::eq, a, b); }
inline Tensor less(const Tensor& a, const Tensor& b) { return compare(CompareOp::lt, a, b); }
inline Tensor greater(const Tensor& a, const Tensor& b) { return compare(CompareOp::gt, a, b); }

// min(max(x, lo), hi); lo <= hi.
Tensor clamp(const Tensor& x, double lo, double hi);
// cond ? a : b, all three broadcast together; cond is bool (or any dtype, nonzero = true).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

}  // namespace lmx::ops
