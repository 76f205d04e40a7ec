#include "lmx/core/ops/elementwise.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "lmx/base/thread_pool.h"
#include "lmx/core/backend.h"
#include "lmx/core/detail/element_access.h"
#include "lmx/core/detail/elementwise_args.h"
#include "lmx/core/detail/strided_loop.h"
#include "lmx/base/error.h"


namespace lmx::ops {
namespace {

// The device kernels' enums (kernel_args.h) list the ops in the same order.
static_assert(static_cast<int>(UnaryOp::erf) == static_cast<int>(kernels::UnaryKernel::erf) &&
              static_cast<int>(UnaryOp::silu) == static_cast<int>(kernels::UnaryKernel::silu));
static_assert(static_cast<int>(BinaryOp::pow) == static_cast<int>(kernels::ArithmeticKernel::pow) &&
              static_cast<int>(BinaryOp::maximum) == static_cast<int>(kernels::ArithmeticKernel::maximum));
static_assert(static_cast<int>(CompareOp::ge) == static_cast<int>(kernels::CompareKernel::ge) &&
              static_cast<int>(CompareOp::lt) == static_cast<int>(kernels::CompareKernel::lt));

constexpr int64_t kParallelThreshold = 1 << 15;  // elements; below this, one thread

void check_defined(const Tensor& t, const char* op) {
  if (!t.defined()) throw InvalidArgument(std::string(op) + ": undefined tensor argument");
}

// Runs body(outer_begin, outer_end) over the layout's outer range, in parallel when
// the op is large enough to amortize the hand-off.
template <size_t N, typename Body>
void run_layout(const detail::StridedLayout<N>& layout, int64_t numel, Body&& body) {
  int64_t outer = detail::outer_count(layout);
  if (numel >= kParallelThreshold && outer > 1) {
    int64_t grain = std::max<int64_t>(1, kParallelThreshold / layout.shape.back());
    ThreadPool::global().parallel_for(outer, grain, body);
  } else if (numel >= kParallelThreshold) {
    // One long run: split the inner dimension instead by viewing it as rows.
    body(0, outer);
  } else {
    body(0, outer);
  }
}

float gelu_exact(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }
float gelu_tanh_approx(float x) {
  const float c = 0.79788456080286536f;  // sqrt(2/pi)
  return 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x)));
}
float softplus_f(float x) {
  // log(1 + exp(x)) without overflow; matches torch's threshold-free definition.
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

template <typename F>
void unary_float_loop(const Tensor& x, Tensor& out, F f) {
  auto layout = detail::make_layout<2>(out.shape(), {&out.strides(), &x.strides()},
                                       {out.offset(), x.offset()});
  void* ob = out.storage()->data();
  const void* xb = x.storage()->data();
  const Dtype od = out.dtype(), xd = x.dtype();
  run_layout(layout, out.numel(), [&](int64_t b, int64_t e) {
    detail::strided_for(layout, b, e, [&](const auto& off, int64_t n, const auto& inc) {
      if (od == Dtype::f32 && xd == Dtype::f32 && inc[0] == 1 && inc[1] == 1) {
        float* o = static_cast<float*>(ob) + off[0];
        const float* in = static_cast<const float*>(xb) + off[1];
        for (int64_t i = 0; i < n; ++i) o[i] = f(in[i]);
        return;
      }
      for (int64_t i = 0; i < n; ++i) {
        float v = detail::load_as_float(xb, xd, off[1] + i * inc[1]);
        detail::store_from_double(ob, od, off[0] + i * inc[0], f(v));
      }
    });
  });
}

template <typename F>
void unary_int_loop(const Tensor& x, Tensor& out, F f) {
  auto layout = detail::make_layout<2>(out.shape(), {&out.strides(), &x.strides()},
                                       {out.offset(), x.offset()});
  void* ob = out.storage()->data();
  const void* xb = x.storage()->data();
  run_layout(layout, out.numel(), [&](int64_t b, int64_t e) {
    detail::strided_for(layout, b, e, [&](const auto& off, int64_t n, const auto& inc) {
      for (int64_t i = 0; i < n; ++i) {
        detail::store_from_int(ob, out.dtype(), off[0] + i * inc[0],
                               f(detail::load_as_int(xb, x.dtype(), off[1] + i * inc[1])));
      }
    });
  });
}

template <typename F>
void binary_float_loop(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  auto layout = detail::make_layout<3>(out.shape(), {&out.strides(), &a.strides(), &b.strides()},
                                       {out.offset(), a.offset(), b.offset()});
  void* ob = out.storage()->data();
  const void* ab = a.storage()->data();
  const void* bb = b.storage()->data();
  const Dtype od = out.dtype(), ad = a.dtype(), bd = b.dtype();
  const bool all_f32 = od == Dtype::f32 && ad == Dtype::f32 && bd == Dtype::f32;
  run_layout(layout, out.numel(), [&](int64_t lo, int64_t hi) {
    detail::strided_for(layout, lo, hi, [&](const auto& off, int64_t n, const auto& inc) {
      if (all_f32 && inc[0] == 1) {
        float* o = static_cast<float*>(ob) + off[0];
        const float* x = static_cast<const float*>(ab) + off[1];
        const float* y = static_cast<const float*>(bb) + off[2];
        if (inc[1] == 1 && inc[2] == 1) {
          for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
        } else if (inc[1] == 1 && inc[2] == 0) {
          const float s = y[0];
          for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], s);
        } else if (inc[1] == 0 && inc[2] == 1) {
          const float s = x[0];
          for (int64_t i = 0; i < n; ++i) o[i] = f(s, y[i]);
        } else {
          for (int64_t i = 0; i < n; ++i) o[i] = f(x[i * inc[1]], y[i * inc[2]]);
        }
        return;
      }
      for (int64_t i = 0; i < n; ++i) {
        float x = detail::load_as_float(ab, ad, off[1] + i * inc[1]);
        float y = detail::load_as_float(bb, bd, off[2] + i * inc[2]);
        detail::store_from_double(ob, od, off[0] + i * inc[0], f(x, y));
      }
    });
  });
}

template <typename F>
void binary_int_loop(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  auto layout = detail::make_layout<3>(out.shape(), {&out.strides(), &a.strides(), &b.strides()},
                                       {out.offset(), a.offset(), b.offset()});
  void* ob = out.storage()->data();
  const void* ab = a.storage()->data();
  const void* bb = b.storage()->data();
  run_layout(layout, out.numel(), [&](int64_t lo, int64_t hi) {
    detail::strided_for(layout, lo, hi, [&](const auto& off, int64_t n, const auto& inc) {
      for (int64_t i = 0; i < n; ++i) {
        int64_t x = detail::load_as_int(ab, a.dtype(), off[1] + i * inc[1]);
        int64_t y = detail::load_as_int(bb, b.dtype(), off[2] + i * inc[2]);
        detail::store_from_int(ob, out.dtype(), off[0] + i * inc[0], f(x, y));
      }
    });
  });
}

const char* unary_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::neg: return "neg";
    case UnaryOp::abs: return "abs";
    case UnaryOp::square: return "square";
    case UnaryOp::exp: return "exp";
    case UnaryOp::log: return "log";
    case UnaryOp::sqrt: return "sqrt";
    case UnaryOp::rsqrt: return "rsqrt";
    case UnaryOp::tanh: return "tanh";
    case UnaryOp::sigmoid: return "sigmoid";
    case UnaryOp::silu: return "silu";
    case UnaryOp::gelu: return "gelu";
    case UnaryOp::gelu_tanh: return "gelu_tanh";
    case UnaryOp::softplus: return "softplus";
    case UnaryOp::sin: return "sin";
    case UnaryOp::cos: return "cos";
    case UnaryOp::erf: return "erf";
  }
  return "unary";
}

const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::add: return "add";
    case BinaryOp::sub: return "sub";
    case BinaryOp::mul: return "mul";
    case BinaryOp::div: return "div";
    case BinaryOp::maximum: return "maximum";
    case BinaryOp::minimum: return "minimum";
    case BinaryOp::pow: return "pow";
  }
  return "binary";
}

template <typename Fn>
void with_float_binary(BinaryOp op, Fn&& fn) {
  switch (op) {
    case BinaryOp::add: return fn([](float x, float y) { return x + y; });
    case BinaryOp::sub: return fn([](float x, float y) { return x - y; });
    case BinaryOp::mul: return fn([](float x, float y) { return x * y; });
    case BinaryOp::div: return fn([](float x, float y) { return x / y; });
    case BinaryOp::maximum: return fn([](float x, float y) { return std::isnan(x) ? x : std::max(x, y); });
    case BinaryOp::minimum: return fn([](float x, float y) { return std::isnan(x) ? x : std::min(x, y); });
    case BinaryOp::pow: return fn([](float x, float y) { return std::pow(x, y); });
  }
}

}  // namespace

Dtype promote_types(Dtype a, Dtype b) {
  if (a == b) return a;
  const bool fa = is_floating(a), fb = is_floating(b);
  if (fa && fb) return Dtype::f32;
  if (fa) return a;
  if (fb) return b;
  if (a == Dtype::boolean) return b;
  if (b == Dtype::boolean) return a;
  if (a == Dtype::u8) return b == Dtype::u32 ? Dtype::u32 : b;
  if (b == Dtype::u8) return a;
  return Dtype::i64;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) {
      throw ShapeError(std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                       " cannot be broadcast together");
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor unary(UnaryOp op, const Tensor& x) {
  const char* name = unary_name(op);
  check_defined(x, name);
  const bool int_op = !is_floating(x.dtype()) &&
                      (op == UnaryOp::neg || op == UnaryOp::abs || op == UnaryOp::square);
  Dtype od = int_op || is_floating(x.dtype()) ? x.dtype() : Dtype::f32;
  Tensor out = Tensor::empty(x.shape(), od, x.device());
  if (out.numel() == 0) return out;
  if (!x.device().is_cpu()) {
    backend_for(x.device())
        .unary(static_cast<kernels::UnaryKernel>(op), detail::elementwise_args<1>(out, {&x}, name));
    return out;
  }
  // The exact (erf) GELU of BERT-family encoders: the backend's vector kernel instead of
  // libm's scalar erf, which dominated their MLPs.
  if (op == UnaryOp::gelu && x.dtype() == Dtype::f32 && x.is_contiguous()) {
    backend_for(x.device()).activation(kernels::Activation::gelu, x.data<float>(), out.data<float>(), out.numel());
    return out;
  }
  if (int_op) {
    switch (op) {
      case UnaryOp::neg: unary_int_loop(x, out, [](int64_t v) { return -v; }); break;
      case UnaryOp::abs: unary_int_loop(x, out, [](int64_t v) { return v < 0 ? -v : v; }); break;
      default: unary_int_loop(x, out, [](int64_t v) { return v * v; }); break;
    }
    return out;
  }
  switch (op) {
    case UnaryOp::neg: unary_float_loop(x, out, [](float v) { return -v; }); break;
    case UnaryOp::abs: unary_float_loop(x, out, [](float v) { return std::fabs(v); }); break;
    case UnaryOp::square: unary_float_loop(x, out, [](float v) { return v * v; }); break;
    case UnaryOp::exp: unary_float_loop(x, out, [](float v) { return std::exp(v); }); break;
    case UnaryOp::log: unary_float_loop(x, out, [](float v) { return std::log(v); }); break;
    case UnaryOp::sqrt: unary_float_loop(x, out, [](float v) { return std::sqrt(v); }); break;
    case UnaryOp::rsqrt: unary_float_loop(x, out, [](float v) { return 1.0f / std::sqrt(v); }); break;
    case UnaryOp::tanh: unary_float_loop(x, out, [](float v) { return std::tanh(v); }); break;
    case UnaryOp::sigmoid:
      unary_float_loop(x, out, [](float v) { return 1.0f / (1.0f + std::exp(-v)); });
      break;
    case UnaryOp::silu:
      unary_float_loop(x, out, [](float v) { return v / (1.0f + std::exp(-v)); });
      break;
    case UnaryOp::gelu: unary_float_loop(x, out, gelu_exact); break;
    case UnaryOp::gelu_tanh: unary_float_loop(x, out, gelu_tanh_approx); break;
    case UnaryOp::softplus: unary_float_loop(x, out, softplus_f); break;
    case UnaryOp::sin: unary_float_loop(x, out, [](float v) { return std::sin(v); }); break;
    case UnaryOp::cos: unary_float_loop(x, out, [](float v) { return std::cos(v); }); break;
    case UnaryOp::erf: unary_float_loop(x, out, [](float v) { return std::erf(v); }); break;
  }
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  check_defined(a, name);
  check_defined(b, name);
  const Device device = common_device(name, {a.device(), b.device()});
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Dtype od = promote_types(a.dtype(), b.dtype());
  if (!device.is_cpu()) {
    // Integer division and power are true divisions here too (see below).
    if (!is_floating(od) && (op == BinaryOp::div || op == BinaryOp::pow)) od = Dtype::f32;
    Tensor out = Tensor::empty(shape, od, device);
    if (out.numel() == 0) return out;
    Tensor ae = a.expand(shape), be = b.expand(shape);
    backend_for(device).binary(static_cast<kernels::ArithmeticKernel>(op),
                               detail::elementwise_args<2>(out, {&ae, &be}, name));
    return out;
  }
  Tensor out = Tensor::empty(shape, od, a.device());
  if (out.numel() == 0) return out;
  Tensor ae = a.expand(shape), be = b.expand(shape);
  if (is_floating(od)) {
    with_float_binary(op, [&](auto f) { binary_float_loop(ae, be, out, f); });
    return out;
  }
  switch (op) {
    case BinaryOp::add: binary_int_loop(ae, be, out, [](int64_t x, int64_t y) { return x + y; }); break;
    case BinaryOp::sub: binary_int_loop(ae, be, out, [](int64_t x, int64_t y) { return x - y; }); break;
    case BinaryOp::mul: binary_int_loop(ae, be, out, [](int64_t x, int64_t y) { return x * y; }); break;
    case BinaryOp::maximum:
      binary_int_loop(ae, be, out, [](int64_t x, int64_t y) { return std::max(x, y); });
      break;
    case BinaryOp::minimum:
      binary_int_loop(ae, be, out, [](int64_t x, int64_t y) { return std::min(x, y); });
      break;
    case BinaryOp::div:
    case BinaryOp::pow: {
      // Integer division and power follow the float path (true division), as in NumPy.
      Tensor fo = Tensor::empty(shape, Dtype::f32, a.device());
      with_float_binary(op, [&](auto f) { binary_float_loop(ae, be, fo, f); });
      return fo;
    }
  }
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, double b) {
  Dtype dt = is_floating(a.dtype()) ? a.dtype()
             : (b == std::floor(b) && op != BinaryOp::div) ? a.dtype()
                                                           : Dtype::f32;
  Tensor s = Tensor::full({}, b, is_floating(dt) ? Dtype::f32 : Dtype::i64, a.device());
  Tensor out = binary(op, a, s);
  return out.dtype() == dt ? out : out.to(dt);
}

Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) {
  check_defined(a, "compare");
  check_defined(b, "compare");
  const Device device = common_device("compare", {a.device(), b.device()});
  Shape shape = broadcast_shapes(a.shape(), b.shape(), "compare");
  Tensor out = Tensor::empty(shape, Dtype::boolean, a.device());
  if (out.numel() == 0) return out;
  Tensor ae = a.expand(shape), be = b.expand(shape);
  if (!device.is_cpu()) {
    backend_for(device).compare(static_cast<kernels::CompareKernel>(op),
                                detail::elementwise_args<2>(out, {&ae, &be}, "compare"));
    return out;
  }
  auto layout = detail::make_layout<3>(shape, {&out.strides(), &ae.strides(), &be.strides()},
                                       {out.offset(), ae.offset(), be.offset()});
  uint8_t* ob = static_cast<uint8_t*>(out.storage()->data());
  const void* ab = ae.storage()->data();
  const void* bb = be.storage()->data();
  detail::strided_for(layout, 0, detail::outer_count(layout),
                      [&](const auto& off, int64_t n, const auto& inc) {
    for (int64_t i = 0; i < n; ++i) {
      double x = detail::load_as_double(ab, ae.dtype(), off[1] + i * inc[1]);
      double y = detail::load_as_double(bb, be.dtype(), off[2] + i * inc[2]);
      bool r = false;
      switch (op) {
        case CompareOp::eq: r = x == y; break;
        case CompareOp::ne: r = x != y; break;
        case CompareOp::lt: r = x < y; break;
        case CompareOp::le: r = x <= y; break;
        case CompareOp::gt: r = x > y; break;
        case CompareOp::ge: r = x >= y; break;
      }
      ob[off[0] + i * inc[0]] = r ? 1 : 0;
    }
  });
  return out;
}

Tensor clamp(const Tensor& x, double lo, double hi) {
  if (lo > hi) {
    throw InvalidArgument("clamp: lower bound " + std::to_string(lo) + " exceeds upper bound " +
                          std::to_string(hi));
  }
  return binary(BinaryOp::minimum, binary(BinaryOp::maximum, x, lo), hi);
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined(cond, "where");
  check_defined(a, "where");
  check_defined(b, "where");
  const Device device = common_device("where", {cond.device(), a.device(), b.device()});
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(),
                                 "where");
  Dtype od = promote_types(a.dtype(), b.dtype());
  Tensor out = Tensor::empty(shape, od, a.device());
  if (out.numel() == 0) return out;
  Tensor ce = cond.expand(shape), ae = a.expand(shape), be = b.expand(shape);
  if (!device.is_cpu()) {
    backend_for(device).where(detail::elementwise_args<3>(out, {&ce, &ae, &be}, "where"));
    return out;
  }
  auto layout = detail::make_layout<4>(
      shape, {&out.strides(), &ce.strides(), &ae.strides(), &be.strides()},
      {out.offset(), ce.offset(), ae.offset(), be.offset()});
  void* ob = out.storage()->data();
  const void* cb = ce.storage()->data();
  const void* ab = ae.storage()->data();
  const void* bb = be.storage()->data();
  detail::strided_for(layout, 0, detail::outer_count(layout),
                      [&](const auto& off, int64_t n, const auto& inc) {
    for (int64_t i = 0; i < n; ++i) {
      bool c = detail::load_as_double(cb, ce.dtype(), off[1] + i * inc[1]) != 0.0;
      if (is_floating(od)) {
        double v = c ? detail::load_as_double(ab, ae.dtype(), off[2] + i * inc[2])
                     : detail::load_as_double(bb, be.dtype(), off[3] + i * inc[3]);
        detail::store_from_double(ob, od, off[0] + i * inc[0], v);
      } else {
        int64_t v = c ? detail::load_as_int(ab, ae.dtype(), off[2] + i * inc[2])
                      : detail::load_as_int(bb, be.dtype(), off[3] + i * inc[3]);
        detail::store_from_int(ob, od, off[0] + i * inc[0], v);
      }
    }
  });
  return out;
}

}  // namespace lmx::ops
