#include "lmx/nn/ssm/causal_conv.h"

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/shape.h"

namespace lmx::nn {

CausalConv1d::CausalConv1d(int64_t channels, int64_t kernel, bool bias, bool mlx_layout)
    : channels_(channels), kernel_(kernel) {
  if (channels <= 0 || kernel <= 0) throw InvalidArgument("causal conv1d: channels and kernel must be positive");
  register_parameter("weight", weight_, mlx_layout ? Shape{channels, kernel, 1} : Shape{channels, 1, kernel});
  if (bias) register_parameter("bias", bias_, {channels});
}

Tensor CausalConv1d::forward(const Tensor& x, Tensor& state) const {
  if (x.ndim() != 3 || x.dim(2) != channels_) {
    throw ShapeError("causal conv1d: input must be [batch, seq, " + std::to_string(channels_) + "], got " +
                     shape_str(x.shape()));
  }
  const int64_t B = x.dim(0), L = x.dim(1), K = kernel_;
  Tensor xf = x.dtype() == Dtype::f32 ? x : x.to(Dtype::f32);
  if (!state.defined()) state = Tensor::zeros({B, K - 1, channels_}, Dtype::f32, x.device());
  if (state.ndim() != 3 || state.dim(0) != B || state.dim(1) != K - 1 || state.dim(2) != channels_) {
    throw ShapeError("causal conv1d: state " + shape_str(state.shape()) + " does not fit input " +
                     shape_str(x.shape()) + " with kernel " + std::to_string(K));
  }
  Tensor padded = K > 1 ? ops::concat({state, xf}, 1) : xf;  // [B, K - 1 + L, C]
  // The taps as K contiguous f32 rows [K, C] (a few KiB, made per call): each product
  // then runs the element-wise ops' contiguous f32 loop, not the per-element dtype-converting
  // one a bf16 weight or the stride-K column of [C, K] sends it to.
  Tensor w = weight_.reshape({channels_, K}).to(Dtype::f32).transpose(0, 1).contiguous();
  Tensor y;
  for (int64_t k = 0; k < K; ++k) {
    Tensor term = ops::mul(padded.slice(1, k, k + L), w.select(0, k));
    y = y.defined() ? ops::add(y, term) : term;
  }
  if (bias_.defined()) y = ops::add(y, bias_);
  state = padded.slice(1, L, L + K - 1).contiguous();
  return y;
}

}  // namespace lmx::nn
