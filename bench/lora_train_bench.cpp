// LoRA training speed on the CPU (issue 18's benchmark): random weights of a config's
// shape (f32), rank-r LoRA on every Linear of the last N blocks (mlx-lm's default keys),
// a batch of random tokens; each step is the training forward, the masked cross-entropy,
// the backward and an AdamW update, as `lmx lora` takes it. Prints the seconds of each
// step, tokens/s of the timed steps (after --warmup untimed steps, default 1) and the
// peak resident memory. tools/bench/lora_torch_bench.py is the same step in plain
// PyTorch. --grad-checkpoint recomputes each block in the backward (`lmx lora
// --grad-checkpoint`).
//
//   lora_train_bench --config qwen2.5-0.5b.json [--batch 4] [--seq 512] [--rank 8]
//                    [--layers 16] [--steps 2] [--warmup 1] [--threads 2] [--grad-checkpoint] [--dtype f32|bf16]
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmx/base/thread_pool.h"
#include "lmx/core/autograd/grad_scope.h"
#include "lmx/core/ops/random.h"
#include "lmx/models/config_reader.h"
#include "lmx/models/random_init.h"
#include "lmx/models/registry.h"
#include "lmx/train/differentiable_transformer.h"
#include "lmx/train/optimizer.h"

using namespace lmx;

int main(int argc, char** argv) {
  std::string config;
  int64_t batch = 4, seq = 512, rank = 8, layers = 16, steps = 2, warmup = 1;
  int threads = 2;
  bool grad_checkpoint = false;
  std::string dtype = "f32";
  CLI::App app("LoRA training steps on random weights of a config's shape");
  app.add_option("--config", config, "config.json")->required();
  app.add_option("--batch", batch, "Sequences per step (default 4)");
  app.add_option("--seq", seq, "Tokens per sequence (default 512)");
  app.add_option("--rank", rank, "LoRA rank (default 8)");
  app.add_option("--layers", layers, "Adapted blocks, counted from the last (default 16)");
  app.add_option("--steps", steps, "Timed steps (default 2)");
  app.add_option("--warmup", warmup, "Untimed steps before them (default 1)");
  app.add_option("--dtype", dtype, "Frozen weights: f32 or bf16 (bf16 GEMMs; adapters stay f32) (default f32)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  app.add_flag("--grad-checkpoint", grad_checkpoint, "Recompute each block in the backward");
  app.add_option("--threads", threads, "CPU threads (default 2)");
  CLI11_PARSE(app, argc, argv);
  ThreadPool::set_global_threads(threads);

  std::ifstream in(config);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", config.c_str());
    return 2;
  }
  auto model = models::create_model(models::ConfigReader(nlohmann::json::parse(in), config));
  models::RandomInitOptions ro;
  ro.dtype = dtype == "bf16" ? Dtype::bf16 : Dtype::f32;
  models::randomize_model(*model, ro);
  model->prepare_for_inference();
  auto& tm = dynamic_cast<models::TransformerLM&>(*model);
  train::LoraConfig lc;
  lc.rank = rank;
  lc.num_layers = layers;
  train::LoraAdapters adapters = train::make_lora(tm, lc, 0);
  train::DifferentiableTransformer dt(tm, {.grad_checkpoint = grad_checkpoint});
  train::OptimizerOptions oo;
  oo.kind = train::OptimizerKind::adamw;
  train::Optimizer opt(adapters.parameters(), oo);

  ops::RandomGenerator rng(1);
  std::vector<int32_t> ids(static_cast<size_t>(batch * (seq + 1)));
  for (auto& v : ids) v = static_cast<int32_t>(rng.next_u64() % static_cast<uint64_t>(tm.vocab_size()));
  Tensor all = Tensor::from_vector(ids, {batch, seq + 1});
  Tensor inputs = all.slice(1, 0, seq).contiguous();
  Tensor targets = all.slice(1, 1, seq + 1).contiguous().reshape({-1});
  Tensor weights = Tensor::full({batch * seq}, 1.0);

  double timed = 0;
  for (int64_t s = 0; s < warmup + steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    double loss = 0;
    {
      autograd::GradScope scope;
      autograd::Var l = dt.loss(inputs, targets, weights, &adapters, nullptr);
      loss = l.value().item<double>();
      autograd::backward(l);
    }
    opt.step(1e-4f);
    opt.zero_grad();
    const double dt_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s >= warmup) timed += dt_s;
    std::printf("step %lld%s: loss %.4f, %.2f s\n", static_cast<long long>(s), s < warmup ? " (warm-up)" : "", loss, dt_s);
    std::fflush(stdout);
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("lmx LoRA (%s weights)%s: %lld tokens/step, %.1f tokens/s over %lld steps, peak RSS %.2f GiB, %d threads\n",
              dtype.c_str(), grad_checkpoint ? " (grad checkpoint)" : "", static_cast<long long>(batch * seq),
              static_cast<double>(batch * seq * steps) / timed, static_cast<long long>(steps),
              ru.ru_maxrss / 1048576.0, threads);
  return 0;
}
