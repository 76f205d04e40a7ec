// Training on the GPU against the CPU (and so against PEFT): for the PEFT fixtures of
// tests/data/train/peft (llama, qwen2, gemma2, qwen3_moe; LoRA and DoRA), one masked
// step's loss and every adapter gradient, and the losses of 20 AdamW steps, computed with
// the model, the adapters, their gradients and the optimizer state on CUDA, equal the
// CPU's; a bf16 base stays within the CPU's bf16 bound of PEFT's f32 run; a 4-bit base
// (QLoRA) equals the CPU's with the same packed weights. Skips visibly without a GPU.
//
// The fixtures are read from $LMX_TEST_DATA (a copy of tests/data) when set, so the
// binary runs from another checkout.
#include <gtest/gtest.h>

#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "lmx/core/autograd/functions.h"
#include "lmx/core/autograd/grad_scope.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/core/ops/optimizer.h"
#include "lmx/core/ops/random.h"
#include "lmx/io/safetensors.h"
#include "lmx/models/load.h"
#include "lmx/models/quantize.h"
#include "lmx/models/save.h"
#include "lmx/models/transformer.h"
#include "lmx/train/adapter_file.h"
#include "lmx/train/differentiable_transformer.h"
#include "lmx/train/optimizer.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;

// The device machines have no debugger: a crash in this binary prints its stack (frames as
// binary(+offset), for addr2line -f -C on the unstripped binary) before dying as before.
void print_stack_and_die(int sig) {
  void* frames[64];
  const int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  signal(sig, SIG_DFL);
  raise(sig);
}
const bool kStackOnCrash = [] {
  signal(SIGSEGV, print_stack_and_die);
  signal(SIGABRT, print_stack_and_die);
  return true;
}();

fs::path data_root() {
  const char* env = std::getenv("LMX_TEST_DATA");
  return env ? fs::path(env) : fs::path(LMX_SOURCE_DIR) / "tests/data";
}
fs::path case_dir(const std::string& name) { return data_root() / "train/peft" / name; }

Tensor reference(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorInfo& info = f.at(name);
  return Tensor::wrap(const_cast<std::byte*>(info.data), info.shape, info.dtype, f.owner()).clone();
}

// max |got - want| / max |want|.
double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    num = std::max(num, static_cast<double>(std::fabs(got[i] - want[i])));
    den = std::max(den, static_cast<double>(std::fabs(want[i])));
  }
  return den > 0 ? num / den : num;
}

enum class Base { f32, bf16, q4 };

// The tiny model quantized to 4 bits (group 32) on the host and written as a quantized
// checkpoint (once per process), so both devices load the same packed weights the way a
// QLoRA run does. (quantize_model prepares the weights for the host's kernels: a model
// quantized in memory cannot then be moved with Module::to.)
fs::path quantized_folder(const std::string& model) {
  const fs::path src = data_root() / "models" / model;
  const fs::path dir = fs::temp_directory_path() / ("lmx-cuda-train-q4-" + model + "-" + std::to_string(::getpid()));
  if (!fs::exists(dir / "config.json")) models::save_quantized_copy(src, dir, {.bits = 4, .group_size = 32});
  return dir;
}

// The tiny model on `device`: its float weights as stored (f32), rounded to bf16, or
// quantized to 4 bits (quantized_folder).
models::LoadedModel load_on(const std::string& model, Device device, Base base) {
  if (base == Base::q4) return models::load_model(quantized_folder(model), {.device = device});
  models::LoadedModel m = models::load_model(data_root() / "models" / model, {.prepare = false});
  if (base == Base::bf16) {
    for (auto& slot : m.model->parameters()) {
      if (slot.tensor->defined() && is_floating(slot.tensor->dtype())) *slot.tensor = slot.tensor->to(Dtype::bf16);
    }
  }
  if (!device.is_cpu()) m.model->to(device);
  m.model->prepare_for_inference();
  return m;
}

struct Case {
  std::string name, model;
};

// One step's loss and gradients (PEFT's names and layouts), the 20 AdamW losses after it.
struct Trace {
  double loss = 0;
  std::map<std::string, std::vector<float>> grads;
  std::vector<double> losses;
};

Trace train_case(const Case& c, Device device, Base base, const train::DifferentiableTransformer::Options& options = {}) {
  models::LoadedModel loaded = load_on(c.model, device, base);
  auto& model = dynamic_cast<models::TransformerLM&>(*loaded.model);
  io::SafetensorsFile ref = io::SafetensorsFile::open(case_dir(c.name) / "reference.safetensors");
  const Tensor ids = reference(ref, "input_ids").to(Dtype::i32);
  const Tensor inputs = ids.slice(1, 0, ids.dim(1) - 1).contiguous();
  const Tensor targets = ids.slice(1, 1, ids.dim(1)).contiguous().reshape({-1});
  const Tensor weights = reference(ref, "weights");
  train::LoraAdapters a = train::load_adapters(case_dir(c.name), model);
  for (auto* p : a.parameters()) EXPECT_EQ(p->value().device(), device) << "an adapter is not on " << device.str();
  train::DifferentiableTransformer dt(model, options);
  Trace t;
  {
    autograd::GradScope scope;
    autograd::Var l = dt.loss(inputs, targets, weights, &a, nullptr);
    EXPECT_EQ(l.value().device(), device);
    t.loss = l.value().item<double>();
    autograd::backward(l);
  }
  for (auto& [layer, pair] : a.layers) {
    const std::string key = "base_model.model." + layer;
    auto add = [&](const std::string& name, const autograd::Var& v, bool transpose) {
      Tensor g = v.grad();
      if (!g.defined()) {
        ADD_FAILURE() << name << ": no gradient";
        return;
      }
      EXPECT_EQ(g.device(), device) << name;
      if (transpose) g = g.transpose(0, 1).contiguous();
      t.grads[name] = g.to(Device::cpu()).to_float_vector();
    };
    add(key + ".lora_A.weight", pair.a, true);
    add(key + ".lora_B.weight", pair.b, true);
    if (pair.m.defined()) add(key + ".lora_magnitude_vector", pair.m, false);
  }
  train::OptimizerOptions o;
  o.kind = train::OptimizerKind::adamw;
  o.weight_decay = 0.01f;
  o.bias_correction = true;
  train::Optimizer opt(a.parameters(), o);
  opt.zero_grad();
  for (int i = 0; i < 20; ++i) {
    autograd::GradScope scope;
    autograd::Var l = dt.loss(inputs, targets, weights, &a, nullptr);
    t.losses.push_back(l.value().item<double>());
    autograd::backward(l);
    opt.step(1e-3f);
    opt.zero_grad();
  }
  for (auto* p : a.parameters()) EXPECT_EQ(p->value().device(), device) << "an updated adapter left " << device.str();
  return t;
}

// How close: the loss and each AdamW loss relative, each gradient as max |diff| / max |want|.
struct Tolerance {
  double loss = 1e-5, grad = 1e-4, adamw = 1e-3;
};

// got against want; prints the largest differences (the numbers the docs quote).
void expect_close(const std::string& label, const Trace& got, const Trace& want, const Tolerance& tol) {
  const double dl = std::fabs(got.loss - want.loss) / std::max(1e-12, std::fabs(want.loss));
  EXPECT_LE(dl, tol.loss) << label << ": loss " << got.loss << " vs " << want.loss;
  double worst = 0;
  std::string worst_key;
  EXPECT_EQ(got.grads.size(), want.grads.size()) << label;
  for (const auto& [key, g] : want.grads) {
    auto it = got.grads.find(key);
    if (it == got.grads.end()) {
      ADD_FAILURE() << label << ": no gradient " << key;
      continue;
    }
    const double e = rel_err(it->second, g);
    EXPECT_LE(e, tol.grad) << label << ": " << key;
    if (e >= worst) worst = e, worst_key = key;
  }
  double worst_step = 0;
  EXPECT_EQ(got.losses.size(), want.losses.size()) << label;
  for (size_t i = 0; i < want.losses.size() && i < got.losses.size(); ++i) {
    const double d = std::fabs(got.losses[i] - want.losses[i]) / std::fabs(want.losses[i]);
    EXPECT_LE(d, tol.adamw) << label << ": AdamW step " << i;
    worst_step = std::max(worst_step, d);
  }
  std::printf("%s: loss %.6f vs %.6f (rel %.2e); %zu gradients, largest rel error %.2e (%s); AdamW losses %.4f -> "
              "%.4f, largest rel difference %.2e\n",
              label.c_str(), got.loss, want.loss, dl, want.grads.size(), worst, worst_key.c_str(),
              got.losses.empty() ? 0.0 : got.losses.front(), got.losses.empty() ? 0.0 : got.losses.back(), worst_step);
  std::fflush(stdout);
}

// PEFT's own numbers of a case (f32).
Trace peft_trace(const Case& c, const Trace& shape_of) {
  io::SafetensorsFile ref = io::SafetensorsFile::open(case_dir(c.name) / "reference.safetensors");
  Trace t;
  t.loss = reference(ref, "loss").item<double>();
  for (const auto& [key, g] : shape_of.grads) t.grads[key] = reference(ref, "grad." + key).to_float_vector();
  for (float v : reference(ref, "adamw_losses").to_float_vector()) t.losses.push_back(v);
  return t;
}

class CudaTrain : public testing::CudaTest, public ::testing::WithParamInterface<Case> {};

// f32: the CUDA step equals the CPU's to f32 rounding (and both are PEFT's within the
// CPU test's bounds: loss 1e-5 absolute there, gradients 1e-4, AdamW losses 1e-3).
TEST_P(CudaTrain, F32StepGradientsAndAdamWLossesEqualTheCpu) {
  const Case& c = GetParam();
  const Trace cpu = train_case(c, Device::cpu(), Base::f32);
  const Trace gpu = train_case(c, Device::cuda(), Base::f32);
  expect_close(c.name + " f32, CUDA vs CPU", gpu, cpu, Tolerance{.loss = 1e-5, .grad = 1e-4, .adamw = 1e-3});
  expect_close(c.name + " f32, CUDA vs PEFT", gpu, peft_trace(c, cpu), Tolerance{.loss = 1e-5, .grad = 1e-4, .adamw = 1e-3});
}

// bf16 base (f32 adapters, gradients, optimizer state): the CUDA GEMMs round x to bf16
// (cuBLAS bf16 x bf16 -> f32), as the CPU's do on AVX512_BF16; both are held to the CPU
// test's bf16 bound of PEFT's f32 run (loss 2e-2, gradients 5e-2, AdamW losses 1e-2), and
// to each other by the same bound.
TEST_P(CudaTrain, Bf16BaseWithinTheCpuBf16Bound) {
  const Case& c = GetParam();
  const Tolerance bf16{.loss = 2e-2, .grad = 5e-2, .adamw = 1e-2};
  const Trace cpu = train_case(c, Device::cpu(), Base::bf16);
  {
    // The base's input gradients as f32 GEMMs (W converted; the default before session 20).
    testing::ScopedEnv f32("LMX_TRAIN_BF16_BACKWARD", "0");
    const Trace gpu = train_case(c, Device::cuda(), Base::bf16);
    expect_close(c.name + " bf16 base, CUDA vs CPU", gpu, cpu, bf16);
    expect_close(c.name + " bf16 base, CUDA vs PEFT f32", gpu, peft_trace(c, cpu), bf16);
  }
  // The default: the base's input gradients as bf16 GEMMs too (g rounded to bf16).
  const Trace half_gpu = train_case(c, Device::cuda(), Base::bf16);
  expect_close(c.name + " bf16 base, bf16 backward GEMMs, CUDA vs CPU", half_gpu, cpu, bf16);
  expect_close(c.name + " bf16 base, bf16 backward GEMMs, CUDA vs PEFT f32", half_gpu, peft_trace(c, cpu), bf16);
}

INSTANTIATE_TEST_SUITE_P(Peft, CudaTrain,
                         ::testing::Values(Case{"llama_lora", "llama"}, Case{"llama_dora", "llama"},
                                           Case{"llama_tied_dora", "llama_tied"}, Case{"qwen2_lora", "qwen2"},
                                           Case{"qwen2_dora", "qwen2"}, Case{"gemma2_lora", "gemma2"},
                                           Case{"gemma2_dora", "gemma2"}, Case{"qwen3_moe_lora", "qwen3_moe"},
                                           Case{"qwen3_moe_dora", "qwen3_moe"}),
                         [](const auto& info) { return info.param.name; });

using CudaTraining = testing::CudaTest;

// QLoRA: the same 4-bit weights (quantized on the host) on both devices; the CUDA
// backward multiplies by the dequantized matrix as the CPU's does. Each device loads a
// quantized checkpoint (quantized_folder): a model quantized in memory on the host is
// prepared for the host's kernels, and moving it with Module::to crashed (session 17).
// On an H100 (session 19): losses equal, gradients within 6.7e-6, AdamW losses 1.1e-7.
// Disabled from session 19's third run (one SIGSEGV in it, cause not found) to session 23,
// whose call passed it 5 times in 5 (staged copies on 3, off 2), in the training tests'
// order once, and under compute-sanitizer memcheck with 0 errors; enabled again. Should it
// crash, the handler above prints the stack.
TEST_F(CudaTraining, QLora4BitEqualsTheCpu) {
  testing::ExactQuantActivations exact;
  for (const Case& c : {Case{"llama_lora", "llama"}, Case{"llama_dora", "llama"}, Case{"qwen2_lora", "qwen2"}}) {
    SCOPED_TRACE(c.name);
    const Trace cpu = train_case(c, Device::cpu(), Base::q4);
    const Trace gpu = train_case(c, Device::cuda(), Base::q4);
    expect_close(c.name + " 4-bit base, CUDA vs CPU", gpu, cpu, Tolerance{.loss = 1e-5, .grad = 1e-4, .adamw = 1e-3});
  }
}

// Gradient checkpointing on CUDA (blocks replayed, the loss in chunks of 7 rows) equals
// the plain CUDA path to f32 rounding.
TEST_F(CudaTraining, GradCheckpointOnCudaEqualsThePlainPath) {
  for (const Case& c : {Case{"llama_lora", "llama"}, Case{"gemma2_dora", "gemma2"}, Case{"qwen3_moe_lora", "qwen3_moe"}}) {
    SCOPED_TRACE(c.name);
    const Trace plain = train_case(c, Device::cuda(), Base::f32);
    const Trace ckpt = train_case(c, Device::cuda(), Base::f32, {.grad_checkpoint = true, .loss_chunk_rows = 7});
    expect_close(c.name + " CUDA, checkpointed (7-row loss chunks) vs plain", ckpt, plain,
                 Tolerance{.loss = 1e-5, .grad = 1e-5, .adamw = 1e-5});
  }
}

// Dropout on CUDA: the same seed draws the same masks (on the host) as on the CPU, so a
// step with dropout gives the CPU's gradients.
TEST_F(CudaTraining, DropoutStepEqualsTheCpu) {
  auto step = [](Device device) {
    models::LoadedModel loaded = load_on("llama", device, Base::f32);
    auto& model = dynamic_cast<models::TransformerLM&>(*loaded.model);
    train::LoraConfig lc;
    lc.num_layers = -1;
    lc.dropout = 0.25f;
    train::LoraAdapters a = train::make_lora(model, lc, 7);
    for (auto& [name, p] : a.layers) p.b.set_value(ops::add(p.b.value(), 0.01));  // a nonzero delta
    io::SafetensorsFile ref = io::SafetensorsFile::open(case_dir("llama_lora") / "reference.safetensors");
    const Tensor ids = reference(ref, "input_ids").to(Dtype::i32);
    ops::RandomGenerator rng(11);
    train::DifferentiableTransformer dt(model);
    autograd::GradScope scope;
    autograd::Var l = dt.loss(ids.slice(1, 0, ids.dim(1) - 1).contiguous(),
                              ids.slice(1, 1, ids.dim(1)).contiguous().reshape({-1}), reference(ref, "weights"), &a, &rng);
    const double loss = l.value().item<double>();
    autograd::backward(l);
    std::vector<float> g;
    for (auto* p : a.parameters()) {
      const auto v = p->grad().to(Device::cpu()).to_float_vector();
      g.insert(g.end(), v.begin(), v.end());
    }
    return std::pair{loss, g};
  };
  const auto [cpu_loss, cpu_g] = step(Device::cpu());
  const auto [gpu_loss, gpu_g] = step(Device::cuda());
  EXPECT_NEAR(gpu_loss, cpu_loss, 1e-5 * std::fabs(cpu_loss));
  const double e = rel_err(gpu_g, cpu_g);
  EXPECT_LE(e, 1e-4);
  std::printf("llama LoRA with dropout 0.25: loss %.6f vs %.6f, gradients rel error %.2e\n", gpu_loss, cpu_loss, e);
}

// The fused Adam / AdamW step on the GPU equals the CPU's bit for bit (the CPU's equals the
// step composed of element-wise ops: core_test AdamStep.*), moments included, over steps
// with bias correction and decay, on a size that leaves a partial block.
TEST_F(CudaTraining, AdamStepEqualsTheCpuBitForBit) {
  using testing::expect_identical;
  using testing::on_cuda;
  using testing::random_tensor;
  Tensor w = random_tensor({129, 65}, 61), m = Tensor::zeros(w.shape()), v = Tensor::zeros(w.shape());
  Tensor gw = on_cuda(w), gm = on_cuda(m), gv = on_cuda(v);
  for (int t = 1; t <= 4; ++t) {
    const Tensor g = ops::mul(random_tensor({129, 65}, 70 + static_cast<uint32_t>(t)), std::pow(10.0, t - 2));
    ops::AdamStepScalars s;
    s.lr = 2e-3, s.m_divisor = 1.0 - std::pow(0.9, t), s.v_divisor = 1.0 - std::pow(0.999, t), s.decay = 1.0 - 2e-5;
    w = ops::adam_step(w, g, m, v, s);
    gw = ops::adam_step(gw, on_cuda(g), gm, gv, s);
    expect_identical(gm, m);
    expect_identical(gv, v);
    expect_identical(gw, w);
  }
  Tensor host_m = Tensor::zeros(w.shape());
  EXPECT_THROW(ops::adam_step(gw, on_cuda(w), host_m, gv, ops::AdamStepScalars{}), InvalidArgument);
}

}  // namespace
}  // namespace lmx
