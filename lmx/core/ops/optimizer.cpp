#include "lmx/core/ops/optimizer.h"

#include <string>

#include "lmx/base/error.h"
#include "lmx/core/backend.h"

namespace lmx::ops {

namespace {

void check_operand(const Tensor& t, const Tensor& w, const char* name, bool contiguous) {
  if (!t.defined()) throw InvalidArgument(std::string("adam_step: ") + name + " is undefined");
  if (t.dtype() != Dtype::f32)
    throw InvalidArgument(std::string("adam_step: ") + name + " must be f32, got " + std::string(dtype_name(t.dtype())));
  if (t.shape() != w.shape())
    throw ShapeError(std::string("adam_step: ") + name + " " + shape_str(t.shape()) + " does not match the parameter " +
                     shape_str(w.shape()));
  if (contiguous && !t.is_contiguous()) throw InvalidArgument(std::string("adam_step: ") + name + " must be contiguous");
}

}  // namespace

Tensor adam_step(const Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const AdamStepScalars& s) {
  check_operand(w, w, "the parameter", false);
  check_operand(g, w, "the gradient", false);
  check_operand(m, w, "the first moment", true);
  check_operand(v, w, "the second moment", true);
  const Device device = common_device("adam_step", {w.device(), g.device(), m.device(), v.device()});
  const Tensor wc = w.contiguous(), gc = g.contiguous();
  Tensor out = Tensor::empty(w.shape(), Dtype::f32, device);
  kernels::AdamStepArgs a;
  a.w = wc.data<float>(), a.g = gc.data<float>(), a.m = m.data<float>(), a.v = v.data<float>();
  a.w_out = out.data<float>(), a.n = w.numel();
  a.beta1 = static_cast<float>(s.beta1), a.one_minus_beta1 = static_cast<float>(1.0 - s.beta1);
  a.beta2 = static_cast<float>(s.beta2), a.one_minus_beta2 = static_cast<float>(1.0 - s.beta2);
  a.m_divisor = static_cast<float>(s.m_divisor), a.v_divisor = static_cast<float>(s.v_divisor);
  a.decay = static_cast<float>(s.decay), a.eps = static_cast<float>(s.eps), a.lr = static_cast<float>(s.lr);
  if (a.n > 0) backend_for(device).adam_step(a);
  return out;
}

}  // namespace lmx::ops
