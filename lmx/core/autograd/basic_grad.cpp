// Backward of the arithmetic, shape, matmul and embedding functions.
#include <string>

#include "lmx/base/env_switch.h"
#include "lmx/base/error.h"
#include "lmx/core/autograd/functions.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/index.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/ops/reduce.h"

namespace lmx::autograd {
namespace {

Tensor as_f32(const Tensor& t) { return t.dtype() == Dtype::f32 ? t : t.to(Dtype::f32); }

// The last two dims swapped.
Tensor mT(const Tensor& t) { return t.transpose(-2, -1); }

// [..., n] as [rows, n].
Tensor rows_of(const Tensor& t) { return t.reshape({-1, t.dim(-1)}); }

// dx = g @ W of a Linear. A bf16 W off the CPU takes the forward's bf16 GEMM (g rounded to
// bf16 once, as torch's bf16 autograd does; cuBLAS bf16 x bf16 -> f32 on CUDA) over a bf16
// copy of W^T: on by default since session 20 (its H100 runs kept the bf16 bounds of PEFT's
// f32 run; the f32 GEMMs were a fifth of a LoRA step); LMX_TRAIN_BF16_BACKWARD=0 converts W
// to f32 for the f32 GEMM instead.
Tensor linear_input_grad(const Tensor& g, const Tensor& w) {
  if (w.dtype() == Dtype::bf16 && !w.device().is_cpu() && env_switch("LMX_TRAIN_BF16_BACKWARD", true)) {
    return ops::linear(g, w.transpose(0, 1));
  }
  return ops::matmul(g, w);  // [..., out] @ [out, in]
}

}  // namespace

Var add(const Var& a, const Var& b) {
  Shape sa = a.shape(), sb = b.shape();
  return Var::from_op(ops::add(as_f32(a.value()), as_f32(b.value())), {&a, &b},
                      [sa, sb](const Tensor& g, const std::vector<bool>& needs) {
                        std::vector<Tensor> out(2);
                        if (needs[0]) out[0] = sum_to(g, sa);
                        if (needs[1]) out[1] = sum_to(g, sb);
                        return out;
                      });
}

Var mul(const Var& a, const Var& b) {
  Tensor av = as_f32(a.value()), bv = as_f32(b.value());
  return Var::from_op(ops::mul(av, bv), {&a, &b}, [av, bv](const Tensor& g, const std::vector<bool>& needs) {
    std::vector<Tensor> out(2);
    if (needs[0]) out[0] = sum_to(ops::mul(g, bv), av.shape());
    if (needs[1]) out[1] = sum_to(ops::mul(g, av), bv.shape());
    return out;
  });
}

Var mul(const Var& a, double s) {
  return Var::from_op(ops::mul(as_f32(a.value()), s), {&a},
                      [s](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{ops::mul(g, s)}; });
}

Var div(const Var& a, const Var& b) {
  Tensor av = as_f32(a.value()), bv = as_f32(b.value());
  return Var::from_op(ops::div(av, bv), {&a, &b}, [av, bv](const Tensor& g, const std::vector<bool>& needs) {
    std::vector<Tensor> out(2);
    Tensor ga = ops::div(g, bv);
    if (needs[0]) out[0] = sum_to(ga, av.shape());
    if (needs[1]) out[1] = sum_to(ops::neg(ops::mul(ga, ops::div(av, bv))), bv.shape());  // -g a / b^2
    return out;
  });
}

Var sum(const Var& a, int axis, bool keepdim) {
  Shape sa = a.shape();
  const int nd = static_cast<int>(sa.size());
  const int ax = axis < 0 ? axis + nd : axis;
  if (ax < 0 || ax >= nd) throw ShapeError("autograd sum: axis " + std::to_string(axis) + " of " + shape_str(sa));
  return Var::from_op(ops::sum(as_f32(a.value()), ax, keepdim), {&a}, [sa, ax](const Tensor& g, const std::vector<bool>&) {
    Shape kept = sa;
    kept[static_cast<size_t>(ax)] = 1;
    return std::vector<Tensor>{g.reshape(kept).expand(sa).contiguous()};
  });
}

Var sum_all(const Var& a) {
  Shape sa = a.shape();
  Tensor total = ops::sum_all(as_f32(a.value()));
  return Var::from_op(total, {&a}, [sa](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g.reshape(Shape(sa.size(), 1)).expand(sa).contiguous()};
  });
}

Var reshape(const Var& a, const Shape& shape) {
  Shape sa = a.shape();
  return Var::from_op(a.value().reshape(shape), {&a}, [sa](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g.reshape(sa)};
  });
}

Var transpose(const Var& a, int d0, int d1) {
  return Var::from_op(a.value().transpose(d0, d1), {&a}, [d0, d1](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g.transpose(d0, d1)};
  });
}

Var matmul(const Var& a, const Var& b) {
  Tensor av = a.value(), bv = b.value();
  if (av.ndim() < 2 || bv.ndim() < 2) {
    throw ShapeError("autograd matmul: operands must be at least 2-D, got " + shape_str(av.shape()) + " and " +
                     shape_str(bv.shape()));
  }
  return Var::from_op(ops::matmul(av, bv), {&a, &b}, [av, bv](const Tensor& g, const std::vector<bool>& needs) {
    std::vector<Tensor> out(2);
    if (needs[0]) out[0] = sum_to(ops::matmul(g, mT(bv)), av.shape());
    if (needs[1]) {
      if (bv.ndim() == 2) {  // a shared matrix: one GEMM over all the batch's rows
        out[1] = ops::matmul(mT(rows_of(av)), rows_of(g));
      } else {
        out[1] = sum_to(ops::matmul(mT(av), g), bv.shape());
      }
    }
    return out;
  });
}

Var linear(const Var& x, const Var& weight, const Var& bias) {
  Tensor xv = x.value(), wv = weight.value();
  if (wv.ndim() != 2) throw ShapeError("autograd linear: weight must be [out, in], got " + shape_str(wv.shape()));
  Shape sb = bias.defined() ? bias.shape() : Shape{};
  return Var::from_op(ops::linear(xv, wv, bias.value()), {&x, &weight, &bias},
                      [xv, wv, sb](const Tensor& g, const std::vector<bool>& needs) {
                        std::vector<Tensor> out(3);
                        if (needs[0]) out[0] = linear_input_grad(g, wv);
                        if (needs[1]) out[1] = ops::matmul(mT(rows_of(g)), rows_of(as_f32(xv)));
                        if (needs[2]) out[2] = ops::sum(rows_of(g), 0);
                        return out;
                      });
}

Var quantized_linear(const Var& x, const QuantizedWeight& weight, const Tensor& bias) {
  Tensor xv = x.value();
  QuantizedWeight w = weight;  // shares the packed data
  return Var::from_op(ops::quantized_linear(xv, weight, bias), {&x}, [w](const Tensor& g, const std::vector<bool>&) {
    // dx = g @ dequant(W); the f32 matrix lives only for this product.
    return std::vector<Tensor>{ops::matmul(g, w.dequantize())};
  });
}

Var embedding(const Var& table, const Tensor& ids) {
  Tensor tv = table.value();
  if (tv.ndim() != 2) throw ShapeError("autograd embedding: table must be [vocab, dim], got " + shape_str(tv.shape()));
  Tensor rows = ops::embedding(tv, ids);
  return Var::from_op(as_f32(rows), {&table}, [ids, tv](const Tensor& g, const std::vector<bool>&) {
    // d table = onehot(ids)^T @ g: a device-generic scatter-add, [vocab, n] @ [n, dim].
    const int64_t vocab = tv.dim(0);
    Tensor flat_ids = ids.reshape({-1, 1}).to(Dtype::i64).to(g.device());
    Tensor range = Tensor::arange(vocab, Dtype::i64).reshape({1, vocab}).to(g.device());
    Tensor onehot = ops::compare(ops::CompareOp::eq, flat_ids, range).to(Dtype::f32);  // [n, vocab]
    return std::vector<Tensor>{ops::matmul(mT(onehot), rows_of(g))};
  });
}

}  // namespace lmx::autograd
