#include "lmx/core/ops/ssm.h"

#include <string>

#include "lmx/base/error.h"
#include "lmx/core/backend.h"

namespace lmx::ops {
namespace {

// A contiguous f32 copy (or the tensor itself) after checking its shape.
Tensor input(const Tensor& t, const Shape& want, const char* op, const char* what) {
  if (!t.defined()) throw InvalidArgument(std::string(op) + ": " + what + " is undefined");
  if (!is_floating(t.dtype())) {
    throw InvalidArgument(std::string(op) + ": " + what + " must be floating, got " +
                          std::string(dtype_name(t.dtype())));
  }
  if (t.shape() != want) {
    throw ShapeError(std::string(op) + ": " + what + " is " + shape_str(t.shape()) + ", expected " +
                     shape_str(want));
  }
  return (t.dtype() == Dtype::f32 ? t : t.to(Dtype::f32)).contiguous();
}

void check_state(const Tensor& state, const Shape& want, const char* op) {
  if (!state.defined() || state.dtype() != Dtype::f32 || !state.is_contiguous() || state.shape() != want) {
    throw ShapeError(std::string(op) + ": state must be a contiguous f32 " + shape_str(want) + ", got " +
                     (state.defined() ? std::string(dtype_name(state.dtype())) + " " + shape_str(state.shape())
                                      : std::string("undefined")));
  }
}

void check_rank(const Tensor& t, int rank, const char* op, const char* what) {
  if (!t.defined() || t.ndim() != rank) {
    throw ShapeError(std::string(op) + ": " + what + " must have " + std::to_string(rank) + " dimensions, got " +
                     (t.defined() ? shape_str(t.shape()) : std::string("undefined")));
  }
}

}  // namespace

Tensor ssm_scan(const Tensor& x_in, const Tensor& dt_in, const Tensor& a_in, const Tensor& b_in, const Tensor& c_in,
                const Tensor& d_in, Tensor& state) {
  const char* op = "ssm_scan";
  check_rank(x_in, 4, op, "x");
  check_rank(b_in, 4, op, "b");
  const int64_t B = x_in.dim(0), L = x_in.dim(1), H = x_in.dim(2), P = x_in.dim(3);
  const int64_t G = b_in.dim(2), N = b_in.dim(3);
  if (G <= 0 || H % G != 0) {
    throw ShapeError(std::string(op) + ": " + std::to_string(H) + " heads are not a multiple of " +
                     std::to_string(G) + " groups");
  }
  Tensor x = input(x_in, {B, L, H, P}, op, "x");
  Tensor dt = input(dt_in, {B, L, H}, op, "dt");
  Tensor a = input(a_in, {H, N}, op, "a");
  Tensor b = input(b_in, {B, L, G, N}, op, "b");
  Tensor c = input(c_in, {B, L, G, N}, op, "c");
  Tensor d = d_in.defined() ? input(d_in, {H}, op, "d") : Tensor();
  check_state(state, {B, H, P, N}, op);
  const Device device = common_device(op, {x.device(), dt.device(), a.device(), b.device(), c.device(),
                                           d.defined() ? d.device() : x.device(), state.device()});
  Tensor y = Tensor::empty({B, L, H, P}, Dtype::f32, device);
  kernels::SsmScanArgs args;
  args.batch = B, args.seq = L, args.heads = H, args.head_dim = P, args.state_dim = N, args.groups = G;
  args.x = x.data<float>(), args.dt = dt.data<float>(), args.a = a.data<float>();
  args.b = b.data<float>(), args.c = c.data<float>(), args.d = d.defined() ? d.data<float>() : nullptr;
  args.state = state.data<float>(), args.y = y.data<float>();
  if (y.numel() > 0) backend_for(device).ssm_scan(args);
  return y;
}

Tensor gated_delta_scan(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& g_in,
                        const Tensor& beta_in, Tensor& state) {
  const char* op = "gated_delta_scan";
  check_rank(q_in, 4, op, "q");
  check_rank(v_in, 4, op, "v");
  const int64_t B = q_in.dim(0), L = q_in.dim(1), Hk = q_in.dim(2), K = q_in.dim(3);
  const int64_t Hv = v_in.dim(2), V = v_in.dim(3);
  if (Hk <= 0 || Hv % Hk != 0) {
    throw ShapeError(std::string(op) + ": " + std::to_string(Hv) + " value heads are not a multiple of " +
                     std::to_string(Hk) + " key heads");
  }
  Tensor q = input(q_in, {B, L, Hk, K}, op, "q");
  Tensor k = input(k_in, {B, L, Hk, K}, op, "k");
  Tensor v = input(v_in, {B, L, Hv, V}, op, "v");
  Tensor g = input(g_in, {B, L, Hv}, op, "g");
  Tensor beta = input(beta_in, {B, L, Hv}, op, "beta");
  check_state(state, {B, Hv, K, V}, op);
  const Device device =
      common_device(op, {q.device(), k.device(), v.device(), g.device(), beta.device(), state.device()});
  Tensor out = Tensor::empty({B, L, Hv, V}, Dtype::f32, device);
  kernels::GatedDeltaArgs args;
  args.batch = B, args.seq = L, args.k_heads = Hk, args.v_heads = Hv, args.k_dim = K, args.v_dim = V;
  args.q = q.data<float>(), args.k = k.data<float>(), args.v = v.data<float>();
  args.g = g.data<float>(), args.beta = beta.data<float>();
  args.state = state.data<float>(), args.out = out.data<float>();
  if (out.numel() > 0) backend_for(device).gated_delta_scan(args);
  return out;
}

}  // namespace lmx::ops
