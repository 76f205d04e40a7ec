#include "lmx/nn/ssm/short_conv.h"

#include "lmx/base/error.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/shape.h"

namespace lmx::nn {

ShortConv::ShortConv(int64_t hidden, int64_t kernel, bool bias) : hidden_(hidden) {
  in_proj_ = std::make_unique<Linear>(hidden, 3 * hidden, bias);
  conv_ = std::make_unique<CausalConv1d>(hidden, kernel, bias);
  out_proj_ = std::make_unique<Linear>(hidden, hidden, bias);
  register_module("conv", *conv_);
  register_module("in_proj", *in_proj_);
  register_module("out_proj", *out_proj_);
}

Tensor ShortConv::forward(const Tensor& x, StateCache* cache) const {
  if (cache) cache->expect_arrays(cache_arrays(), "short conv");
  std::vector<Tensor> bcx = ops::split(in_proj_->forward(x), {hidden_, hidden_, hidden_}, -1);
  Tensor state = cache ? cache->get(0) : Tensor();
  Tensor conv = conv_->forward(ops::mul(bcx[0], bcx[2]), state);
  if (cache) {
    cache->set(0, state);
    cache->advance(x.dim(1));
  }
  return out_proj_->forward(ops::mul(bcx[1], conv));
}

}  // namespace lmx::nn
