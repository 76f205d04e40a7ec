#include "lmx/core/ops/step_ops.h"

#include <string>

#include "lmx/base/error.h"
#include "lmx/core/backend.h"
#include "lmx/core/device_graph.h"
#include "lmx/core/step_values.h"

namespace lmx::ops {

namespace {

GraphBackend& graphs_of(Device device, const char* op) {
  GraphBackend* g = graph_backend_for(device);
  if (!g) throw Unsupported(std::string(op) + ": no fused decode kernels on " + device.str());
  return *g;
}

void strides_of(const Tensor& t, int64_t* out) {
  for (int d = 0; d < 4; ++d) out[d] = t.strides()[d];
}

// The KV cache buffers these ops write: f32, or bf16 (a bf16 cache on the GPU).
bool kv_buffer_dtype(const Tensor& t) { return t.dtype() == Dtype::f32 || t.dtype() == Dtype::bf16; }

}  // namespace

void write_at_step_position(const Tensor& dst, const Tensor& src_in) {
  const StepValues* step = dst.defined() ? step_values(dst.device()) : nullptr;
  if (!step) throw InvalidArgument("write_at_step_position: no captured decode step on this tensor's device");
  if (dst.ndim() != 4 || src_in.ndim() != 4 || !kv_buffer_dtype(dst) || src_in.dim(0) != dst.dim(0) ||
      src_in.dim(1) != dst.dim(1) || src_in.dim(3) != dst.dim(3) || step->host_position + src_in.dim(2) > dst.dim(2)) {
    throw ShapeError("write_at_step_position: src " + shape_str(src_in.shape()) + " at position " +
                     std::to_string(step->host_position) + " does not fit f32 / bf16 dst " + shape_str(dst.shape()));
  }
  common_device("write_at_step_position", {dst.device(), src_in.device()});
  Tensor src = src_in.dtype() == Dtype::f32 ? src_in : src_in.to(Dtype::f32);
  kernels::PositionedWriteArgs a;
  a.batch = src.dim(0), a.heads = src.dim(1), a.seq = src.dim(2), a.dim = src.dim(3);
  a.src = src.data<float>();
  a.dst = dst.raw_data();
  a.bf16_dst = dst.dtype() == Dtype::bf16;
  strides_of(src, a.src_strides);
  strides_of(dst, a.dst_strides);
  a.position = step->position;
  if (src.numel() > 0) graphs_of(dst.device(), "write_at_step_position").write_at_position(a);
}

Tensor rope_append(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const RopeParams& p,
                   const Tensor& kbuf, const Tensor& vbuf) {
  const char* op = "rope_append";
  for (const Tensor* t : {&q_in, &k_in, &v_in, &kbuf, &vbuf}) {
    if (!t->defined() || t->ndim() != 4) throw ShapeError(std::string(op) + ": q, k, v and the buffers must be 4-D");
  }
  const int64_t Hq = q_in.dim(1), Hkv = k_in.dim(1), D = q_in.dim(3), Dv = v_in.dim(3);
  const int64_t rd = p.rotary_dim == 0 ? D : p.rotary_dim;
  if (q_in.dim(0) != 1 || q_in.dim(2) != 1 || k_in.dim(0) != 1 || k_in.dim(2) != 1 || v_in.dim(0) != 1 ||
      v_in.dim(2) != 1 || v_in.dim(1) != Hkv || k_in.dim(3) != D || kbuf.dim(1) != Hkv || kbuf.dim(3) != D ||
      vbuf.dim(1) != Hkv || vbuf.dim(3) != Dv || kbuf.dim(0) != 1 || vbuf.dim(0) != 1 ||
      p.offset >= kbuf.dim(2) || p.offset >= vbuf.dim(2) || p.offset < 0 || rd <= 0 || rd > D || rd % 2 != 0 ||
      !p.inv_freq.defined() || p.inv_freq.numel() != rd / 2 || !kv_buffer_dtype(kbuf) ||
      vbuf.dtype() != kbuf.dtype()) {
    throw ShapeError(std::string(op) + ": one token of batch 1 at position " + std::to_string(p.offset) +
                      " into f32 / bf16 buffers: q " + shape_str(q_in.shape()) + ", k " + shape_str(k_in.shape()) + ", v " +
                     shape_str(v_in.shape()) + ", buffers " + shape_str(kbuf.shape()));
  }
  const Device device =
      common_device(op, {q_in.device(), k_in.device(), v_in.device(), kbuf.device(), vbuf.device(), p.inv_freq.device()});
  GraphBackend& g = graphs_of(device, op);
  Tensor q = q_in.dtype() == Dtype::f32 ? q_in : q_in.to(Dtype::f32);
  Tensor k = k_in.dtype() == Dtype::f32 ? k_in : k_in.to(Dtype::f32);
  Tensor v = v_in.dtype() == Dtype::f32 ? v_in : v_in.to(Dtype::f32);
  Tensor freqs = p.inv_freq.dtype() == Dtype::f32 ? p.inv_freq.contiguous() : p.inv_freq.to(Dtype::f32).contiguous();
  Tensor out = Tensor::empty(q.shape(), Dtype::f32, device);
  kernels::RopeAppendArgs a;
  a.q_heads = Hq, a.kv_heads = Hkv, a.head_dim = D, a.v_head_dim = Dv, a.rotary_dim = rd;
  a.traditional = p.traditional;
  a.inv_freq = freqs.data<float>();
  a.mscale = p.mscale;
  a.q = q.data<float>(), a.k = k.data<float>(), a.v = v.data<float>();
  a.q_out = out.data<float>(), a.kbuf = kbuf.raw_data(), a.vbuf = vbuf.raw_data();
  a.bf16_buffers = kbuf.dtype() == Dtype::bf16;
  strides_of(q, a.q_strides);
  strides_of(out, a.q_out_strides);
  strides_of(k, a.k_strides);
  strides_of(v, a.v_strides);
  strides_of(kbuf, a.kbuf_strides);
  strides_of(vbuf, a.vbuf_strides);
  a.position = p.offset;
  if (const StepValues* step = step_values(device)) {
    if (p.offset != step->host_position) {
      throw Unsupported(std::string(op) + ": a captured decode step writes at the step's position only");
    }
    a.device_position = step->position;
  }
  g.rope_append(a);
  return out;
}

}  // namespace lmx::ops
