// lmx fuse: LoRA / DoRA adapters (or full fine-tuning's weights) fused into a copy of the
// model (mlx-lm's fuse).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>

#include "cli_common.h"
#include "commands.h"
#include "lmx/base/error.h"
#include "lmx/io/atomic_write.h"
#include "lmx/models/load.h"
#include "lmx/models/save.h"
#include "lmx/train/adapter_file.h"
#include "lmx/train/fuse.h"

namespace lmx::cli {
namespace {

struct FuseArgs {
  std::string model;
  std::string adapter_path = "adapters";
  std::string save_path = "fused_model";
  bool dequantize = false;
  bool force = false;
};

void run_fuse(const FuseArgs& a) {
  const auto src = resolve_model_arg(a.model);
  std::error_code ec;
  if (std::filesystem::equivalent(src, a.save_path, ec)) throw InvalidArgument("--save-path must differ from the model");
  auto loaded = models::load_model(src, {.prepare = false});
  auto* model = dynamic_cast<models::TransformerLM*>(loaded.model.get());
  if (!model) throw Unsupported("fuse: model type '" + loaded.model->model_type() + "' takes no adapters yet");
  train::LoraAdapters adapters = train::load_adapters(a.adapter_path, *model);
  train::fuse_adapters(*model, adapters, a.dequantize);
  models::SaveOptions opts;
  opts.drop_quantization = a.dequantize;
  io::write_folder_atomic(a.save_path, a.force, [&](const std::filesystem::path& staging) {
    models::save_model(*model, src, staging, opts);
  });
  if (adapters.weights.empty()) {
    std::printf("fused %zu %s adapters into %s\n", adapters.layers.size(), train::fine_tune_type_name(adapters.config.type),
                a.save_path.c_str());
  } else {
    std::printf("wrote %zu fine-tuned weights into %s\n", adapters.weights.size(), a.save_path.c_str());
  }
}

}  // namespace

void add_fuse_command(CLI::App& app) {
  auto a = std::make_shared<FuseArgs>();
  auto* cmd = app.add_subcommand("fuse", "Fuse LoRA / DoRA adapters (mlx-lm or PEFT folders) or full fine-tuning weights into a copy of the model");
  cmd->add_option("-m,--model", a->model, "Base model folder or Hugging Face repo id")->required();
  cmd->add_option("--adapter-path", a->adapter_path, "Adapters folder (default adapters)");
  cmd->add_option("--save-path", a->save_path, "Where the fused model goes (default fused_model)");
  cmd->add_flag("--dequantize", a->dequantize, "Leave a quantized base dense (default: quantize again as it was)");
  cmd->add_flag("--force", a->force, "Replace a non-empty --save-path folder");
  cmd->callback([a] { run_fuse(*a); });
}

}  // namespace lmx::cli
