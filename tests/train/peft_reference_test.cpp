// LoRA, DoRA and full fine-tuning against Hugging Face PEFT / transformers
// (tools/fixtures/make_peft_fixtures.py, run on the GPU machine): PEFT's saved adapter
// folders load as they are; the logits with the adapters attached and after fusing equal
// PEFT's unmerged and merged logits; the loss and every gradient of one masked step, and
// the losses of 20 torch.optim.AdamW steps, equal PEFT's; and real PEFT loads the folders
// lmx's --export-peft writes and gives lmx's logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "lmx/core/autograd/functions.h"
#include "lmx/core/autograd/grad_scope.h"
#include "lmx/train/adapter_file.h"
#include "lmx/train/differentiable_transformer.h"
#include "lmx/train/fuse.h"
#include "lmx/train/optimizer.h"
#include "lmx/train/peft_adapter.h"
#include "tests/train/train_fixtures.h"

namespace lmx {
namespace {

using testing::reference;
using testing::rel_err;

namespace fs = std::filesystem;

fs::path case_dir(const std::string& name) { return fs::path(LMX_SOURCE_DIR) / "tests/data/train/peft" / name; }



struct Case {
  std::string name, model;
  size_t layers = 14;  // adapted Linear layers
};

// The tiny model, its float weights stored in bf16 when asked (as a bf16 checkpoint is
// trained: the base GEMMs run on bf16, adapters and activations stay f32).
models::LoadedModel load_case_model(const Case& c, bool bf16) {
  models::LoadedModel m = testing::load_tiny(c.model, /*prepare=*/false);
  if (bf16) {
    for (auto& slot : m.model->parameters()) {
      if (slot.tensor->defined() && is_floating(slot.tensor->dtype())) *slot.tensor = slot.tensor->to(Dtype::bf16);
    }
  }
  m.model->prepare_for_inference();
  return m;
}

// How close to PEFT: the loss (absolute), each gradient (largest difference over the
// largest value) and each AdamW loss (relative).
struct Tolerance {
  double loss = 1e-5, grad = 1e-4, adamw = 1e-3;
};

struct Fixture {
  explicit Fixture(const Case& c, bool bf16 = false)
      : loaded(load_case_model(c, bf16)),
        model(testing::transformer(loaded)),
        ref(io::SafetensorsFile::open(case_dir(c.name) / "reference.safetensors")) {
    ids = reference(ref, "input_ids").to(Dtype::i32);
    inputs = ids.slice(1, 0, ids.dim(1) - 1).contiguous();
    targets = ids.slice(1, 1, ids.dim(1)).contiguous().reshape({-1});
    weights = reference(ref, "weights");
  }
  autograd::Var loss(const train::DifferentiableTransformer& dt, const train::LoraAdapters& a) const {
    return dt.loss(inputs, targets, weights, &a, nullptr);
  }
  // One step's loss and gradients, then 20 AdamW steps as torch.optim.AdamW takes them
  // (with gradient checkpointing when asked); returns the gradients and the losses.
  using Options = train::DifferentiableTransformer::Options;
  struct Trace {
    std::map<std::string, std::vector<float>> grads;
    std::vector<double> losses;
  };
  Trace check_training(train::LoraAdapters& a, const std::map<std::string, std::pair<autograd::Var*, bool>>& grads,
                       const Options& options = {}, const Tolerance& tol = {}) {
    Trace trace;
    train::DifferentiableTransformer dt(model, options);
    {
      autograd::GradScope scope;
      autograd::Var l = loss(dt, a);
      EXPECT_NEAR(l.value().item<double>(), reference(ref, "loss").item<double>(), tol.loss);
      autograd::backward(l);
    }
    double worst = 0;
    for (const auto& [key, target] : grads) {
      Tensor g = target.first->grad();
      if (target.second) g = g.transpose(0, 1).contiguous();  // PEFT's [out, in] layout
      const double err = rel_err(g.to_float_vector(), reference(ref, "grad." + key).to_float_vector());
      EXPECT_LE(err, tol.grad) << key;
      worst = std::max(worst, err);
      trace.grads[key] = g.to_float_vector();
    }
    train::OptimizerOptions o;
    o.kind = train::OptimizerKind::adamw;
    o.weight_decay = 0.01f;
    o.bias_correction = true;
    train::Optimizer opt(a.parameters(), o);
    opt.zero_grad();
    const auto want = reference(ref, "adamw_losses").to_float_vector();
    double worst_loss = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      autograd::GradScope scope;
      autograd::Var l = loss(dt, a);
      const double d = std::fabs(l.value().item<double>() - want[i]) / std::fabs(want[i]);
      EXPECT_LE(d, tol.adamw) << "step " << i;
      worst_loss = std::max(worst_loss, d);
      trace.losses.push_back(l.value().item<double>());
      autograd::backward(l);
      opt.step(1e-3f);
      opt.zero_grad();
    }
    std::string label;
    if (options.grad_checkpoint) {
      label = options.loss_chunk_rows < 100 ? "checkpointed, loss in chunks of " + std::to_string(options.loss_chunk_rows) + " rows: "
                                            : "checkpointed: ";
    }
    std::printf("%s%zu gradients: largest relative error to PEFT %.2e; %zu AdamW losses %.4f -> %.4f, largest "
                "relative difference %.2e\n",
                label.c_str(), grads.size(), worst, want.size(), want.front(), want.back(), worst_loss);
    return trace;
  }
  models::LoadedModel loaded;
  models::TransformerLM& model;
  io::SafetensorsFile ref;
  Tensor ids, inputs, targets, weights;
};

// The adapters' leaves by PEFT's gradient names (true: PEFT's [out, in] layout).
std::map<std::string, std::pair<autograd::Var*, bool>> peft_gradients(train::LoraAdapters& a) {
  std::map<std::string, std::pair<autograd::Var*, bool>> grads;
  for (auto& [layer, pair] : a.layers) {
    const std::string key = "base_model.model." + layer;
    grads[key + ".lora_A.weight"] = {&pair.a, true};
    grads[key + ".lora_B.weight"] = {&pair.b, true};
    if (pair.m.defined()) grads[key + ".lora_magnitude_vector"] = {&pair.m, false};
  }
  return grads;
}

// Checkpointed and plain training traces are identical.
void expect_same(const Fixture::Trace& plain, const Fixture::Trace& checkpointed) {
  ASSERT_EQ(plain.grads.size(), checkpointed.grads.size());
  for (const auto& [key, g] : plain.grads) EXPECT_EQ(g, checkpointed.grads.at(key)) << key;
  EXPECT_EQ(plain.losses, checkpointed.losses);
}

// Checkpointed and chunked: the same up to f32 rounding (relative 1e-5).
void expect_close(const Fixture::Trace& plain, const Fixture::Trace& chunked) {
  ASSERT_EQ(plain.grads.size(), chunked.grads.size());
  double worst = 0;
  for (const auto& [key, g] : plain.grads) worst = std::max(worst, rel_err(chunked.grads.at(key), g));
  for (size_t i = 0; i < plain.losses.size(); ++i) {
    worst = std::max(worst, std::fabs(chunked.losses[i] - plain.losses[i]) / std::fabs(plain.losses[i]));
  }
  EXPECT_LE(worst, 1e-5);
  std::printf("chunked loss vs plain: largest relative difference %.2e\n", worst);
}

// Blocks checkpointed, the loss in one chunk (bit for bit the plain path), or in chunks of
// 7 rows (several chunks on every fixture, the last one short).
const train::DifferentiableTransformer::Options kOneLossChunk{.grad_checkpoint = true, .loss_chunk_rows = 1 << 30};
const train::DifferentiableTransformer::Options kSevenRowChunks{.grad_checkpoint = true, .loss_chunk_rows = 7};

class PeftReference : public ::testing::TestWithParam<Case> {};

TEST_P(PeftReference, LogitsMergedLogitsGradientsAndAdamWLosses) {
  Fixture f(GetParam());
  train::LoraAdapters a = train::load_adapters(case_dir(GetParam().name), f.model);
  EXPECT_EQ(a.config.type, GetParam().name.ends_with("dora") ? train::FineTuneType::dora : train::FineTuneType::lora);
  EXPECT_EQ(a.layers.size(), GetParam().layers);
  EXPECT_EQ(a.config.scale, 2.0f);  // lora_alpha 8 / r 4

  a.attach(f.model);
  const auto logits = reference(f.ref, "logits").to_float_vector();
  const double attached = rel_err(f.model.forward(f.ids, nullptr, {}).to_float_vector(), logits);
  EXPECT_LE(attached, 1e-4);
  train::fuse_adapters(f.model, a, false);
  const double merged = rel_err(f.model.forward(f.ids, nullptr, {}).to_float_vector(),
                                reference(f.ref, "merged_logits").to_float_vector());
  EXPECT_LE(merged, 1e-4);
  std::printf("%s: logits with attached adapters %.2e, fused %.2e from PEFT's\n", GetParam().name.c_str(), attached,
              merged);

  Fixture fresh(GetParam());  // the unfused model for training
  train::LoraAdapters t = train::load_adapters(case_dir(GetParam().name), fresh.model);
  const Fixture::Trace plain = fresh.check_training(t, peft_gradients(t));

  // --grad-checkpoint: the same gradients and AdamW losses, bit for bit, as the plain
  // path (which the lines above hold to PEFT's).
  Fixture again(GetParam());
  train::LoraAdapters c = train::load_adapters(case_dir(GetParam().name), again.model);
  expect_same(plain, again.check_training(c, peft_gradients(c), kOneLossChunk));

  // And with the loss in chunks of 7 rows: PEFT's tolerances, f32 rounding from plain.
  Fixture chunked(GetParam());
  train::LoraAdapters d = train::load_adapters(case_dir(GetParam().name), chunked.model);
  expect_close(plain, chunked.check_training(d, peft_gradients(d), kSevenRowChunks));
}

INSTANTIATE_TEST_SUITE_P(Adapters, PeftReference,
                         ::testing::Values(Case{"llama_lora", "llama"}, Case{"llama_dora", "llama"},
                                           Case{"llama_tied_dora", "llama_tied"}, Case{"qwen2_lora", "qwen2"},
                                           Case{"qwen2_dora", "qwen2"}, Case{"gemma2_lora", "gemma2", 21},
                                           Case{"gemma2_dora", "gemma2", 21}, Case{"qwen3_moe_lora", "qwen3_moe", 8},
                                           Case{"qwen3_moe_dora", "qwen3_moe", 8}),
                         [](const auto& info) { return info.param.name; });

// A bf16 base (the weights of PEFT's f32 model rounded to bf16, as `lmx convert --dtype
// bfloat16` writes them; on AVX512_BF16 the prefill GEMMs also round x to bf16) with
// f32 adapters, against PEFT's f32 run: bf16 keeps 8 significant bits (relative rounding
// 2^-9 = 2e-3 per weight and per GEMM input, over every layer), so the loss is held to
// 2e-2, the gradients to 5e-2 and the AdamW losses to 1e-2 (measured: gradients 2.5e-2
// and AdamW losses 2.7e-3 at most, both on qwen3_moe), and the gradients must differ
// from PEFT's f32 ones by more than 1e-6 (the bf16 path ran).
TEST(PeftReference, Bf16BaseWithinBf16Rounding) {
  const Tolerance bf16{.loss = 2e-2, .grad = 5e-2, .adamw = 1e-2};
  for (const Case& c : {Case{"llama_lora", "llama"}, Case{"qwen2_dora", "qwen2"}, Case{"gemma2_lora", "gemma2", 21},
                        Case{"qwen3_moe_lora", "qwen3_moe", 8}}) {
    SCOPED_TRACE(c.name);
    std::printf("%s, bf16 base: ", c.name.c_str());
    Fixture f(c, /*bf16=*/true);
    train::LoraAdapters a = train::load_adapters(case_dir(c.name), f.model);
    const Fixture::Trace t = f.check_training(a, peft_gradients(a), {}, bf16);
    double moved = 0;
    for (const auto& [key, g] : t.grads) moved = std::max(moved, rel_err(g, reference(f.ref, "grad." + key).to_float_vector()));
    EXPECT_GT(moved, 1e-6);
  }
}

TEST(PeftReference, FullFineTuningOfTheLastBlock) {
  Fixture f(Case{"llama_full", "llama"});
  train::LoraAdapters a = train::make_lora(f.model, testing::tuning(train::FineTuneType::full, 1), 0);
  std::map<std::string, std::pair<autograd::Var*, bool>> grads;
  for (auto& [name, w] : a.weights) grads[name] = {&w, false};
  EXPECT_EQ(grads.size(), 9u);
  const Fixture::Trace plain = f.check_training(a, grads);
  Fixture again(Case{"llama_full", "llama"});
  train::LoraAdapters c = train::make_lora(again.model, testing::tuning(train::FineTuneType::full, 1), 0);
  std::map<std::string, std::pair<autograd::Var*, bool>> cgrads;
  for (auto& [name, w] : c.weights) cgrads[name] = {&w, false};
  expect_same(plain, again.check_training(c, cgrads, kOneLossChunk));
}

// export/<model>/ was written by `lmx lora --export-peft` from the random mlx-lm adapters
// of export_mlx/<model>/ (tools/fixtures/make_export_adapters.py); PEFT loaded it with
// PeftModel.from_pretrained on the GPU machine, checked that every tensor arrived
// unchanged and saved its logits (make_peft_fixtures.py --export-dir).
class PeftExport : public ::testing::TestWithParam<std::string> {};

TEST_P(PeftExport, RealPeftLoadsTheExportedFolderAndGivesTheSameLogits) {
  const std::string m = GetParam();
  auto loaded = testing::load_tiny(m);
  auto& model = testing::transformer(loaded);
  // The committed folder is what lmx writes today for those mlx-lm adapters.
  testing::TempDir tmp;
  train::save_peft_adapters(tmp.path, train::load_adapters(case_dir("export_mlx/" + m), model),
                            "tests/data/models/" + m);
  auto written = io::SafetensorsFile::open(tmp.path / "adapter_model.safetensors");
  auto committed = io::SafetensorsFile::open(case_dir("export/" + m) / "adapter_model.safetensors");
  ASSERT_EQ(written.tensors().size(), committed.tensors().size());
  for (const auto& info : committed.tensors()) {
    const io::TensorInfo& w = written.at(info.name);
    ASSERT_EQ(w.nbytes, info.nbytes) << info.name;
    EXPECT_EQ(std::memcmp(w.data, info.data, info.nbytes), 0) << info.name;
  }
  auto ref = io::SafetensorsFile::open(case_dir("export/" + m) / "peft_logits.safetensors");
  train::load_adapters(case_dir("export/" + m), model).attach(model);
  const double err = rel_err(model.forward(reference(ref, "input_ids").to(Dtype::i32), nullptr, {}).to_float_vector(),
                             reference(ref, "logits").to_float_vector());
  EXPECT_LE(err, 1e-4);
  std::printf("%s: PEFT's logits with lmx's exported adapters %.2e from lmx's\n", m.c_str(), err);
}

INSTANTIATE_TEST_SUITE_P(Models, PeftExport, ::testing::Values("llama", "qwen2", "gemma2", "qwen3_moe"));

}  // namespace
}  // namespace lmx
