// lmx lora: LoRA / DoRA / full fine-tuning (mlx-lm's `lora --train` / `--test`) on a
// folder of train.jsonl / valid.jsonl / test.jsonl, adapters written in mlx-lm's files;
// --export-peft writes adapters as a PEFT folder. With --tensor-parallel N, the model split
// over N ranks (lmx/train/split_training.h) is trained and tested, the whole model's files
// saved.
#include <CLI/CLI.hpp>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>

#include "cli_common.h"
#include "commands.h"
#include "lmx/base/error.h"
#include "lmx/generate/model_container.h"
#include "lmx/train/adapter_file.h"
#include "lmx/train/peft_adapter.h"
#include "lmx/train/split_adapters.h"
#include "lmx/train/split_training.h"
#include "lmx/train/trainer.h"

namespace lmx::cli {
namespace {

namespace fs = std::filesystem;

struct LoraArgs {
  std::string model;
  bool train = false;
  bool test = false;
  std::string data = "data";
  std::string fine_tune_type = "lora";
  int64_t num_layers = 16;
  int64_t batch_size = 4;
  int64_t iters = 1000;
  double learning_rate = 1e-5;
  std::string adapter_path = "adapters";
  std::string resume_adapter_file;
  std::string export_peft;
  int64_t grad_accumulation_steps = 1;
  bool weight_decay_given = false;
  int64_t steps_per_report = 10;
  int64_t steps_per_eval = 200;
  int64_t val_batches = 25;
  int64_t test_batches = 500;
  int64_t save_every = 100;
  int64_t max_seq_length = 2048;
  uint64_t seed = 0;
  bool mask_prompt = false;
  bool grad_checkpoint = false;
  int64_t rank = 8;
  double scale = 20.0;
  double dropout = 0.0;
  std::vector<std::string> keys;
  std::string optimizer = "adam";
  double weight_decay = 0.01;
  std::string lr_schedule = "constant";
  int64_t warmup = 0;
  double grad_clip = 0.0;
  int threads = 0;
  std::string device = "cpu";
  int tensor_parallel = 1;
};

models::TransformerLM& transformer_of(generate::ModelContainer& c) {
  auto* t = dynamic_cast<models::TransformerLM*>(&c.model());
  if (!t) throw Unsupported("lora: model type '" + c.model().model_type() + "' cannot be trained yet");
  return *t;
}

std::vector<train::Example> read_split(const fs::path& dir, const char* name, const generate::ModelContainer& c) {
  const fs::path file = dir / (std::string(name) + ".jsonl");
  if (!fs::exists(file)) throw IoError("lora: " + file.string() + " not found (--data holds train/valid/test.jsonl)");
  return train::load_jsonl(file, c);
}

void warn_truncated(const std::vector<train::Example>& data, int64_t max_len, const char* split) {
  if (int64_t n = train::count_longer_than(data, max_len)) {
    std::fprintf(stderr, "%s: %lld of %zu examples are longer than --max-seq-length %lld and are truncated\n", split,
                 static_cast<long long>(n), data.size(), static_cast<long long>(max_len));
  }
}

// The first Ctrl-C asks training to stop after the current batch and save; a second one
// ends the process as usual.
std::atomic<bool> g_stop{false};
void on_interrupt(int) {
  g_stop.store(true);
  std::signal(SIGINT, SIG_DFL);
}

train::LoraConfig lora_config(const LoraArgs& a, train::FineTuneType type, int64_t model_layers) {
  train::LoraConfig lc;
  lc.type = type;
  lc.rank = a.rank;
  lc.scale = static_cast<float>(a.scale);
  lc.dropout = static_cast<float>(a.dropout);
  lc.num_layers = a.num_layers < 0 ? -1 : std::min(a.num_layers, model_layers);
  lc.keys = a.keys;
  return lc;
}

train::TrainOptions train_options(const LoraArgs& a) {
  train::TrainOptions o;
  o.batch_size = a.batch_size;
  o.iters = a.iters;
  o.steps_per_report = a.steps_per_report;
  o.steps_per_eval = a.steps_per_eval;
  o.val_batches = a.val_batches;
  o.save_every = a.save_every;
  o.grad_accumulation_steps = a.grad_accumulation_steps;
  o.max_seq_length = a.max_seq_length;
  o.mask_prompt = a.mask_prompt;
  o.grad_clip = a.grad_clip;
  o.seed = a.seed;
  o.schedule.kind = train::parse_schedule(a.lr_schedule);
  o.schedule.peak = static_cast<float>(a.learning_rate);
  o.schedule.warmup = a.warmup;
  o.schedule.total = std::max<int64_t>(1, a.iters / std::max<int64_t>(1, a.grad_accumulation_steps));  // updates
  o.optimizer.kind = train::parse_optimizer(a.optimizer);
  // mlx's Adafactor has no weight decay unless asked.
  o.optimizer.weight_decay =
      o.optimizer.kind == train::OptimizerKind::adafactor && !a.weight_decay_given ? 0.0f : static_cast<float>(a.weight_decay);
  o.adapter_path = a.adapter_path;
  o.config_extra = {{"model", a.model},         {"data", a.data},          {"batch_size", a.batch_size},
                    {"iters", a.iters},         {"learning_rate", a.learning_rate},
                    {"max_seq_length", a.max_seq_length}, {"mask_prompt", a.mask_prompt}, {"seed", a.seed},
                    {"optimizer", a.optimizer}, {"lr_schedule", a.lr_schedule},
                    {"grad_accumulation_steps", a.grad_accumulation_steps},
                    {"grad_checkpoint", a.grad_checkpoint}};
  return o;
}

void print_report(const train::TrainReport& r) {
  switch (r.kind) {
    case train::TrainReport::Kind::validation:
      std::printf("Iter %lld: val loss %.3f\n", static_cast<long long>(r.iteration), r.loss);
      break;
    case train::TrainReport::Kind::train:
      std::printf("Iter %lld: train loss %.3f, learning rate %.3e, it/s %.3f, tokens/s %.1f, trained tokens %lld, "
                  "peak memory %s\n",
                  static_cast<long long>(r.iteration), r.loss, r.learning_rate, r.iterations_per_second,
                  r.tokens_per_second, static_cast<long long>(r.trained_tokens), format_bytes(r.peak_memory).c_str());
      break;
    case train::TrainReport::Kind::save:
      std::printf("Iter %lld: saved adapters to %s\n", static_cast<long long>(r.iteration), r.saved.c_str());
      break;
  }
  std::fflush(stdout);
}

// Reads train / valid, says what is trained, runs `run` (the trainer, whole or split) with
// Ctrl-C asking it to stop; false when it was stopped.
bool run_training(const LoraArgs& a, const generate::ModelContainer& c, int64_t trainable, size_t tensors,
                  int64_t num_layers,
                  const std::function<train::TrainResult(const std::vector<train::Example>&,
                                                         const std::vector<train::Example>&, const train::TrainOptions&)>&
                      run) {
  const fs::path data(a.data);
  const auto train_set = read_split(data, "train", c);
  const auto valid_set = read_split(data, "valid", c);
  warn_truncated(train_set, a.max_seq_length, "train");
  warn_truncated(valid_set, a.max_seq_length, "valid");
  std::printf("Training %lld %s parameters in %zu tensors of the last %lld blocks; %zu train, %zu valid examples\n",
              static_cast<long long>(trainable), a.fine_tune_type.c_str(), tensors, static_cast<long long>(num_layers),
              train_set.size(), valid_set.size());
  train::TrainOptions o = train_options(a);
  g_stop.store(false);
  o.stop_requested = [] { return g_stop.load(); };
  auto* previous = std::signal(SIGINT, on_interrupt);
  const train::TrainResult result = run(train_set, valid_set, o);
  std::signal(SIGINT, previous == SIG_ERR ? SIG_DFL : previous);
  if (result.stopped) {
    std::printf("Interrupted at iteration %lld: adapters saved in %s\n", static_cast<long long>(result.iterations),
                a.adapter_path.c_str());
  }
  return !result.stopped;
}

// --export-peft: the adapters (trained, or of --adapter-path) as a PEFT folder.
void export_peft(const LoraArgs& a, const train::LoraAdapters& adapters) {
  train::save_peft_adapters(a.export_peft, adapters, a.model);
  std::printf("wrote PEFT adapters (%zu layers) to %s\n", adapters.layers.size(), a.export_peft.c_str());
}

// --test: the loss on test.jsonl by `evaluate` (the whole model's or the split one's).
void report_test_loss(const LoraArgs& a, const generate::ModelContainer& c,
                      const std::function<double(const std::vector<train::Example>&)>& evaluate) {
  const auto test_set = read_split(fs::path(a.data), "test", c);
  warn_truncated(test_set, a.max_seq_length, "test");
  const double loss = evaluate(test_set);
  std::printf("Test loss %.3f, Test ppl %.3f.\n", loss, std::exp(loss));
}

void report_resumed(const LoraArgs& a) { std::printf("Resuming from %s\n", a.resume_adapter_file.c_str()); }

// --tensor-parallel N: fine-tuning (LoRA, DoRA or full) of the split model, each rank on a
// thread of its own; the whole model's adapters saved, tested and exported.
void run_split_lora(const LoraArgs& a, train::FineTuneType type, generate::ModelContainer& c,
                    models::TensorParallelLM& model) {
  std::optional<train::SplitFineTune> tune;
  if (a.train) {
    tune.emplace(model, lora_config(a, type, model.num_layers()), a.seed);
    if (!a.resume_adapter_file.empty()) {
      tune->resume(a.resume_adapter_file);
      report_resumed(a);
    }
    const train::TrainingForwardOptions forward{.grad_checkpoint = a.grad_checkpoint};
    const bool finished = run_training(a, c, tune->parameter_count(), tune->rank(0).parameters().size(),
                                       tune->rank(0).config.num_layers,
                                       [&](const auto& train_set, const auto& valid_set, const train::TrainOptions& o) {
                                         return tune->train(train_set, valid_set, o, forward, print_report);
                                       });
    if (!finished) return;
  } else if (a.test) {
    tune.emplace(train::SplitFineTune::saved(model, a.adapter_path));
  }
  if (!a.export_peft.empty()) {
    export_peft(a, tune ? tune->whole() : train::load_whole_adapters(model, a.adapter_path));
  }
  if (!a.test) return;
  report_test_loss(a, c, [&](const std::vector<train::Example>& test_set) {
    return tune->evaluate(test_set, a.batch_size, a.test_batches, a.max_seq_length, a.mask_prompt);
  });
}

void run_lora(const LoraArgs& a) {
  apply_threads(a.threads);
  if (!a.train && !a.test && a.export_peft.empty()) throw InvalidArgument("lora: give --train, --test, --export-peft or a mix");
  const train::FineTuneType type = train::parse_fine_tune_type(a.fine_tune_type);
  // On a GPU the frozen weights, the adapters, their gradients and the optimizer state all
  // live in its memory; only batches' token ids and the loss value cross.
  const Device device = device_arg(a.device);
  auto container = generate::ModelContainer::load(
      resolve_model_arg(a.model).string(), {.prepare = true, .device = device, .tensor_parallel = a.tensor_parallel});
  if (auto* split = dynamic_cast<models::TensorParallelLM*>(&container->model())) {
    run_split_lora(a, type, *container, *split);
    return;
  }
  models::TransformerLM& model = transformer_of(*container);
  // Built only to train or test: exporting needs no differentiable forward.
  std::optional<train::DifferentiableTransformer> dt;
  if (a.train || a.test) dt.emplace(model, train::DifferentiableTransformer::Options{.grad_checkpoint = a.grad_checkpoint});
  train::LoraAdapters adapters;
  if (a.train) {
    adapters = train::make_lora(model, lora_config(a, type, model.num_layers()), a.seed);
    if (!a.resume_adapter_file.empty()) {
      train::resume_adapters(a.resume_adapter_file, adapters);
      report_resumed(a);
    }
    int64_t trainable = 0;
    for (auto* p : adapters.parameters()) trainable += p->value().numel();
    const bool finished =
        run_training(a, *container, trainable, adapters.parameters().size(), adapters.config.num_layers,
                     [&](const auto& train_set, const auto& valid_set, const train::TrainOptions& o) {
                       return train::train(*dt, adapters, train_set, valid_set, o, print_report);
                     });
    if (!finished) return;
  } else {
    adapters = train::load_adapters(a.adapter_path, model);
  }
  if (!a.export_peft.empty()) export_peft(a, adapters);
  if (!a.test) return;
  report_test_loss(a, *container, [&](const std::vector<train::Example>& test_set) {
    return train::evaluate(*dt, &adapters, test_set, a.batch_size, a.test_batches, a.max_seq_length, a.mask_prompt);
  });
}

}  // namespace

void add_lora_command(CLI::App& app) {
  auto a = std::make_shared<LoraArgs>();
  auto* cmd = app.add_subcommand("lora", "Fine-tune a model (LoRA, DoRA or full; mlx-lm's lora), test or export adapters");
  cmd->add_option("-m,--model", a->model, "Model folder or Hugging Face repo id")->required();
  cmd->add_flag("--train", a->train, "Train adapters");
  cmd->add_flag("--test", a->test, "Report the loss on test.jsonl (after training, or of --adapter-path)");
  cmd->add_option("--data", a->data, "Folder with train.jsonl, valid.jsonl, test.jsonl (default data)");
  cmd->add_option("--fine-tune-type", a->fine_tune_type, "lora, dora or full (default lora)");
  cmd->add_option("--num-layers", a->num_layers, "Train the last N blocks (default 16, or all when fewer; -1 all)");
  cmd->add_option("--batch-size", a->batch_size, "Examples per step (default 4)");
  cmd->add_option("--iters", a->iters, "Training steps (default 1000)");
  cmd->add_option("--learning-rate", a->learning_rate, "Peak learning rate (default 1e-5)");
  cmd->add_option("--adapter-path", a->adapter_path,
                  "Folder of adapters.safetensors + adapter_config.json (default adapters); --test and --export-peft "
                  "also read PEFT folders");
  cmd->add_option("--resume-adapter-file", a->resume_adapter_file,
                  "Start training from these weights (an adapters.safetensors of the same type, rank and layers)");
  cmd->add_option("--export-peft", a->export_peft,
                  "Write the adapters (trained, or of --adapter-path) as a PEFT folder (LoRA / DoRA)");
  cmd->add_option("--grad-accumulation-steps", a->grad_accumulation_steps,
                  "Batches whose mean gradient makes one update (default 1)");
  cmd->add_option("--steps-per-report", a->steps_per_report, "Steps between progress lines (default 10)");
  cmd->add_option("--steps-per-eval", a->steps_per_eval, "Steps between validation losses (default 200)");
  cmd->add_option("--val-batches", a->val_batches, "Validation batches (default 25; -1 all)");
  cmd->add_option("--test-batches", a->test_batches, "Test batches (default 500; -1 all)");
  cmd->add_option("--save-every", a->save_every, "Steps between saved adapters (default 100)");
  cmd->add_option("--max-seq-length", a->max_seq_length, "Longer examples are truncated (default 2048)");
  cmd->add_option("--seed", a->seed, "Seed of the initialization, batch order and dropout (default 0)");
  cmd->add_flag("--mask-prompt", a->mask_prompt, "Leave the prompt tokens out of the loss");
  cmd->add_flag("--grad-checkpoint", a->grad_checkpoint,
                "Keep only each block's input and recompute the block in the backward (less memory, one more "
                "forward)");
  cmd->add_option("--rank", a->rank, "LoRA rank (default 8)");
  cmd->add_option("--lora-scale", a->scale, "LoRA scale (default 20)");
  cmd->add_option("--lora-dropout", a->dropout, "Dropout on the adapters' input (default 0)");
  cmd->add_option("--keys", a->keys, "Layers to adapt inside each block, e.g. self_attn.q_proj (default all Linear)");
  cmd->add_option("--optimizer", a->optimizer, "adam, adamw, sgd or adafactor (default adam)");
  cmd->add_option("--weight-decay", a->weight_decay, "AdamW weight decay (default 0.01; Adafactor: 0)")
      ->each([a](const std::string&) { a->weight_decay_given = true; });
  cmd->add_option("--lr-schedule", a->lr_schedule, "constant, linear or cosine (default constant)");
  cmd->add_option("--warmup", a->warmup, "Linear warmup steps (default 0)");
  cmd->add_option("--grad-clip", a->grad_clip, "Clip the gradient's global norm (default 0: off)");
  cmd->add_option("-t,--threads", a->threads, "CPU threads (default: all cores)");
  add_device_option(cmd, a->device);
  add_tensor_parallel_option(cmd, a->tensor_parallel);
  cmd->callback([a] { run_lora(*a); });
}

}  // namespace lmx::cli
