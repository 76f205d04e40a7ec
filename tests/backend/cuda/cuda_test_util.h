// Shared by the CUDA tests: a fixture that skips without a GPU, and comparisons of a
// CUDA result with the CPU backend's.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmx/backend/cuda/cuda_backend.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/tensor.h"
#include "../../core/test_util.h"
#include "../cpu/cpu_tiers.h"

namespace lmx::testing {

class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device visible";
  }
};

// The CPU results these tests compare with are the exact ones: bf16 matmuls on f32 x
// (LMX_BF16_DOT=0), not x rounded to bf16 (AMD's default with AVX512_BF16), so that
// a GPU path computing on f32 x (the matvecs) is held to f32 rounding and one rounding x
// (the bf16 GEMMs) to its own bound, whatever the host CPU. Set for the whole binary.
class ExactCpuBf16Matmuls : public ::testing::Environment {
 public:
  void SetUp() override { cpu::set_cpu_features_for_testing(cpu::testing::with_bf16_dot(cpu::cpu_features(), false)); }
};
inline const bool kExactCpuBf16Matmuls = (::testing::AddGlobalTestEnvironment(new ExactCpuBf16Matmuls), true);

inline Tensor on_cuda(const Tensor& t) { return t.to(Device::cuda()); }

// A model fixture of tests/data/models, read from $LMX_TEST_MODELS when set (the device
// machine has no source tree).
inline std::filesystem::path model_fixture(const std::string& name) {
  const char* env = std::getenv("LMX_TEST_MODELS");
  return (env ? std::filesystem::path(env) : std::filesystem::path(LMX_SOURCE_DIR) / "tests/data/models") / name;
}

// An environment switch (lmx/base/env_switch.h) set for a scope, the old value restored after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* v = std::getenv(name)) saved_ = v;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (saved_) setenv(name_, saved_->c_str(), 1);
    else unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> saved_;
};

// Exact f32 activations in the quantized matmuls of both devices while alive: the CPU's
// default rounds x to int16 (LMX_QUANT_ACTIVATIONS), the GPU's few-row and prefill GEMMs
// round it to bf16 (LMX_CUDA_QUANT_FEW_ROWS_SMALL, LMX_CUDA_QUANT_BF16_PREFILL).
struct ExactQuantActivations {
  ops::QuantActivations saved = ops::quant_activations();
  ScopedEnv few_rows{"LMX_CUDA_QUANT_FEW_ROWS_SMALL", "0"}, prefill{"LMX_CUDA_QUANT_BF16_PREFILL", "0"};
  ExactQuantActivations() { ops::set_quant_activations(ops::QuantActivations::f32); }
  ~ExactQuantActivations() { ops::set_quant_activations(saved); }
};

// A CUDA test with some switches set for each test's duration.
class CudaSwitchedTest : public CudaTest {
 protected:
  explicit CudaSwitchedTest(std::vector<const char*> on) : on_(std::move(on)) {}
  void SetUp() override {
    CudaTest::SetUp();
    for (const char* name : on_) set_.push_back(std::make_unique<ScopedEnv>(name, "1"));
  }
  void TearDown() override { set_.clear(); }

 private:
  std::vector<const char*> on_;
  std::vector<std::unique_ptr<ScopedEnv>> set_;
};

// A CUDA result against the CPU's: same shape and dtype, values within tolerance.
inline void expect_matches(const Tensor& cuda, const Tensor& cpu, double rel = 1e-5, double abs = 1e-6) {
  ASSERT_TRUE(cuda.device().is_cuda()) << cuda.str();
  ASSERT_EQ(cuda.shape(), cpu.shape());
  ASSERT_EQ(cuda.dtype(), cpu.dtype());
  const std::vector<float> got = cuda.to_float_vector(), want = cpu.to_float_vector();
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(want[i]) || std::isinf(want[i])) {  // NaN where NaN, the same infinity
      ASSERT_EQ(std::isnan(got[i]), std::isnan(want[i])) << "at " << i;
      if (!std::isnan(want[i])) {
        ASSERT_EQ(got[i], want[i]) << "at " << i;
      }
    } else {
      ASSERT_NEAR(got[i], want[i], abs + rel * std::fabs(want[i])) << "at " << i;
    }
  }
}

// max |a - b| / max(1, max |b|), as the parity tests measure it.
inline double relative_error(const Tensor& got, const Tensor& want) {
  auto g = got.to_float_vector(), w = want.to_float_vector();
  EXPECT_EQ(g.size(), w.size());
  double scale = 1.0, err = 0.0;
  for (float v : w) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  for (size_t i = 0; i < std::min(g.size(), w.size()); ++i)
    err = std::max(err, static_cast<double>(std::fabs(g[i] - w[i])));
  return err / scale;
}

// Bit-for-bit equality (copies, conversions, integer ops).
inline void expect_identical(const Tensor& cuda, const Tensor& cpu) {
  ASSERT_TRUE(cuda.device().is_cuda()) << cuda.str();
  ASSERT_EQ(cuda.shape(), cpu.shape());
  ASSERT_EQ(cuda.dtype(), cpu.dtype());
  Tensor host = cuda.to(Device::cpu()).contiguous(), want = cpu.contiguous();
  const auto* a = static_cast<const unsigned char*>(host.raw_data());
  const auto* b = static_cast<const unsigned char*>(want.raw_data());
  const std::vector<unsigned char> got(a, a + host.nbytes()), expected(b, b + want.nbytes());
  EXPECT_EQ(got, expected);
}

}  // namespace lmx::testing
