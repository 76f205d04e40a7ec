// The decode matvecs' input prologue (LMX_CUDA_FUSED_INPUT; ops::linears_with_prologue):
// the RMSNorm with its residual add, and the gated activation, made inside the linears'
// launch, against the CPU running the norm (or activation) and the linears as separate ops.
// Dense bf16 targets, prepared 4- and 8-bit targets on the tensor-core matvec and on the
// CUDA-core one; k that is not a power of two; row counts that leave partial blocks.
//
// Bound: the fused x differs from the separate norm's by the rounding of its sum of squares
// (summed in another order: a few ulps of the scale), and the linears then sum in f32 in
// another order than the CPU: |gpu - cpu| <= 1e-5 * sum_p |W_jp x_p| + 1e-6 per output. A
// missing weight, offset, residual or activation misses it by far.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/ops/linear_input.h"
#include "lmx/core/ops/nn.h"
#include "lmx/core/quantized_weight.h"

namespace lmx {
namespace {

using testing::on_cuda;
using testing::random_tensor;

class CudaFusedInput : public testing::CudaSwitchedTest {
 protected:
  CudaFusedInput() : CudaSwitchedTest({"LMX_CUDA_FUSED_INPUT"}) {}
};

// One weight kind of the targets: dense bf16, or MLX-quantized (bits, group) on the
// tensor-core matvec (mma) or the CUDA-core one.
struct Kind {
  std::string name;
  int bits = 0;  // 0: dense bf16
  int group = 64;
  bool mma = true;
};

const std::vector<Kind> kKinds = {
    {"bf16"}, {"q4g64-mma", 4, 64, true}, {"q4g64-cores", 4, 64, false}, {"q8g32-mma", 8, 32, true},
    {"q8g128-cores", 8, 128, false}};

// The targets of one test: their CPU weights (dense f32 of the dequantized values where
// quantized, the reference's) and the CUDA ones.
struct Targets {
  std::vector<Tensor> dense_cpu, dense_cuda;
  std::vector<QuantizedWeight> quant_cpu, quant_cuda;
  std::vector<Tensor> biases;

  Targets(const Kind& kind, int64_t k, const std::vector<int64_t>& ns, uint32_t seed) {
    for (size_t i = 0; i < ns.size(); ++i) {
      const Tensor w = random_tensor({ns[i], k}, seed + static_cast<uint32_t>(i), Dtype::f32, -0.5f, 0.5f);
      if (kind.bits == 0) {
        dense_cpu.push_back(w.to(Dtype::bf16));
        dense_cuda.push_back(on_cuda(dense_cpu.back()));
      } else {
        quant_cpu.push_back(QuantizedWeight::quantize(w, kind.bits, kind.group, Dtype::bf16));
        QuantizedWeight g = quant_cpu.back();
        g.w = on_cuda(g.w), g.scales = on_cuda(g.scales), g.biases = on_cuda(g.biases);
        g.prepare();
        quant_cuda.push_back(g);
      }
      biases.push_back(i == 1 ? random_tensor({ns[i]}, seed + 50, Dtype::f32) : Tensor());
    }
  }
  std::vector<Tensor> cpu(const Tensor& x) const {
    std::vector<Tensor> out;
    for (size_t i = 0; i < biases.size(); ++i) {
      const Tensor w = dense_cpu.empty() ? quant_cpu[i].dequantize() : dense_cpu[i].to(Dtype::f32);
      out.push_back(ops::linear(x, w, biases[i]));
    }
    return out;
  }
  std::optional<std::vector<Tensor>> fused(const ops::LinearInput& in) const {
    std::vector<const Tensor*> d;
    std::vector<const QuantizedWeight*> q;
    for (const Tensor& t : dense_cuda) d.push_back(&t);
    for (const QuantizedWeight& w : quant_cuda) q.push_back(&w);
    std::vector<Tensor> b;
    for (const Tensor& t : biases) b.push_back(t.defined() ? on_cuda(t) : t);
    return ops::linears_with_prologue(in, d, q, b);
  }
  // sum_p |W_jp x_p| of target i, per row.
  std::vector<double> magnitude(size_t i, const Tensor& x) const {
    const Tensor w = dense_cpu.empty() ? quant_cpu[i].dequantize() : dense_cpu[i].to(Dtype::f32);
    const std::vector<float> m = ops::linear(ops::abs(x), ops::abs(w), Tensor()).to_float_vector();
    return {m.begin(), m.end()};
  }
};

void expect_outputs(const std::vector<Tensor>& got, const std::vector<Tensor>& want, const Targets& t,
                    const Tensor& x_cpu) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_TRUE(got[i].device().is_cuda());
    ASSERT_EQ(got[i].shape(), want[i].shape());
    const std::vector<float> g = got[i].to_float_vector(), c = want[i].to_float_vector();
    const std::vector<double> mag = t.magnitude(i, x_cpu);
    for (size_t j = 0; j < c.size(); ++j) {
      ASSERT_NEAR(g[j], c[j], 1e-5 * mag[j] + 1e-6) << "target " << i << " row " << j;
    }
  }
}

TEST_F(CudaFusedInput, NormWithResidualMatchesTheSeparateOps) {
  const int64_t k = 1152;  // 18 groups of 64, 36 of 32, 9 of 128
  const std::vector<int64_t> ns = {131, 40, 17};
  for (const Kind& kind : kKinds) {
    const testing::ScopedEnv mma("LMX_CUDA_QUANT_MMA", kind.mma ? "1" : "0");
    for (int variant = 0; variant < 4; ++variant) {
      // 0: bf16 weight with the residual; 1: unit-offset f32 weight with it; 2: no residual;
      // 3: no weight at all (NanoChat).
      SCOPED_TRACE(kind.name + " variant " + std::to_string(variant));
      const Targets t(kind, k, ns, 700 + static_cast<uint32_t>(variant));
      const Tensor x = random_tensor({1, 1, k}, 11 + static_cast<uint32_t>(variant), Dtype::f32, -3.0f, 3.0f);
      const Tensor r = variant < 2 ? random_tensor({1, 1, k}, 12, Dtype::f32, -3.0f, 3.0f) : Tensor();
      Tensor w = variant == 3 ? Tensor() : random_tensor({k}, 13, Dtype::f32, 0.5f, 1.5f);
      if (variant == 0) w = w.to(Dtype::bf16);
      const bool offset = variant == 1;
      Tensor sum_cpu;
      const Tensor h_cpu = r.defined() ? ops::add_rms_norm(x, r, w, 1e-5f, offset, &sum_cpu)
                                       : ops::rms_norm(x, w, 1e-5f, offset);
      Tensor sum;
      const ops::LinearInput in = ops::LinearInput::rms_normed(on_cuda(x), r.defined() ? on_cuda(r) : r,
                                                               w.defined() ? on_cuda(w) : w, 1e-5f, offset, &sum);
      const auto got = t.fused(in);
      ASSERT_TRUE(got.has_value()) << "the backend ran no prologue";
      expect_outputs(*got, t.cpu(h_cpu), t, h_cpu);
      if (r.defined()) {  // x + residual: one f32 add, the same bits
        ASSERT_TRUE(sum.defined());
        EXPECT_EQ(sum.to_float_vector(), sum_cpu.to_float_vector());
      } else {
        EXPECT_FALSE(sum.defined());
      }
    }
  }
}

TEST_F(CudaFusedInput, GatedActivationMatchesTheSeparateOps) {
  const int64_t k = 2176;  // 34 groups of 64
  for (const Kind& kind : kKinds) {
    const testing::ScopedEnv mma("LMX_CUDA_QUANT_MMA", kind.mma ? "1" : "0");
    for (ops::GatedActivation act :
         {ops::GatedActivation::silu, ops::GatedActivation::gelu, ops::GatedActivation::gelu_tanh}) {
      SCOPED_TRACE(kind.name + " activation " + std::to_string(static_cast<int>(act)));
      const Targets t(kind, k, {97}, 900 + static_cast<uint32_t>(act));
      const Tensor gate = random_tensor({1, 1, k}, 21, Dtype::f32, -4.0f, 4.0f);
      const Tensor up = random_tensor({1, 1, k}, 22, Dtype::f32, -2.0f, 2.0f);
      const Tensor h_cpu = ops::gated_activation(act, gate, up);
      const auto got = t.fused(ops::LinearInput::gated(act, on_cuda(gate), on_cuda(up)));
      ASSERT_TRUE(got.has_value()) << "the backend ran no prologue";
      expect_outputs(*got, t.cpu(h_cpu), t, h_cpu);
    }
  }
}

TEST_F(CudaFusedInput, SwitchedOffOrManyRowsRunsNothing) {
  const Targets t(kKinds[0], 256, {64}, 5);
  const Tensor x = on_cuda(random_tensor({1, 1, 256}, 6)), r = on_cuda(random_tensor({1, 1, 256}, 7));
  Tensor sum;
  {
    const testing::ScopedEnv off("LMX_CUDA_FUSED_INPUT", "0");
    EXPECT_FALSE(t.fused(ops::LinearInput::rms_normed(x, r, Tensor(), 1e-6f, false, &sum)).has_value());
  }
  const Tensor rows = on_cuda(random_tensor({1, 2, 256}, 8));
  EXPECT_FALSE(t.fused(ops::LinearInput::rms_normed(rows, Tensor(), Tensor(), 1e-6f, false, &sum)).has_value());
  EXPECT_FALSE(sum.defined());  // nothing ran, nothing written
  // The input still runs as separate ops when read.
  const ops::LinearInput in = ops::LinearInput::rms_normed(x, r, Tensor(), 1e-6f, false, &sum);
  testing::expect_matches(in.value(), ops::rms_norm(ops::add(x, r), Tensor(), 1e-6f).to(Device::cpu()));
  EXPECT_TRUE(sum.defined());
}

}  // namespace
}  // namespace lmx
