// lmx convert: a model folder (an LLM, or an embedder with its sentence-transformers
// modules) to an mlx-community-style folder (optionally quantized or cast), or a llama2.c
// checkpoint to a Hugging Face llama folder.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "cli_common.h"
#include "commands.h"
#include "lmx/base/error.h"
#include "lmx/io/atomic_write.h"
#include "lmx/io/llama2c_import.h"
#include "lmx/core/quantized_weight.h"
#include "lmx/models/embed/embedder_folder.h"
#include "lmx/models/load.h"
#include "lmx/models/save.h"

namespace lmx::cli {
namespace {

struct ConvertArgs {
  std::string model;
  std::string out;
  std::string from_llama2c;
  std::string tokenizer;
  bool quantize = false;
  int q_bits = 0;  // 0: the mode's default
  int q_group_size = 0;  // 0: the mode's default
  std::string q_mode = "affine";
  std::string quant_predicate;
  std::string dtype;
  bool force = false;
};

void run_convert(const ConvertArgs& a) {
  if (!a.from_llama2c.empty()) {
    if (a.tokenizer.empty()) throw InvalidArgument("--from-llama2c needs --tokenizer TOKENIZER.bin");
    io::write_folder_atomic(a.out, a.force, [&](const std::filesystem::path& staging) {
      io::import_llama2c(a.from_llama2c, a.tokenizer, staging);
    });
    std::printf("wrote %s\n", a.out.c_str());
    return;
  }
  if (a.model.empty()) throw InvalidArgument("give --model SRC (or --from-llama2c MODEL.bin)");
  models::SaveOptions opts;
  if (!a.dtype.empty()) {
    auto d = parse_dtype(a.dtype);
    if (!d || !is_floating(*d)) throw InvalidArgument("--dtype must be float32, float16 or bfloat16");
    opts.dtype = d;
  }
  auto src = resolve_model_arg(a.model);
  std::error_code ec;
  if (std::filesystem::equivalent(src, a.out, ec)) throw InvalidArgument("--out must differ from the source");
  // An embedder (sentence-transformers folder or encoder-only model) converts its
  // Transformer module and keeps the other modules; anything else loads as an LLM.
  const bool embedder = models::embed::is_embedder_folder(src);
  std::optional<models::LoadedModel> llm;
  models::embed::LoadedEncoder encoder;
  if (embedder) encoder = models::embed::load_encoder(src);
  else llm = models::load_model(src, {.prepare = false});
  nn::Module& model = embedder ? static_cast<nn::Module&>(*encoder.encoder) : *llm->model;
  if (a.quantize) {
    models::QuantizeOptions q;
    q.mode = parse_quant_mode(a.q_mode, "--q-mode");
    auto [group, bits] = default_group_size_and_bits(q.mode);
    q.bits = a.q_bits ? a.q_bits : bits;
    q.group_size = a.q_group_size ? a.q_group_size : group;
    q.recipe = a.quant_predicate;
    if (!q.recipe.empty() && q.mode != QuantMode::affine) {
      throw InvalidArgument("--quant-predicate supports --q-mode affine only");
    }
    if (!q.recipe.empty() && embedder) throw InvalidArgument("--quant-predicate: the recipes are for LLMs, not embedders");
    // Scales keep the weights' dtype, as mlx does (after the optional cast).
    q.scale_dtype = opts.dtype.value_or(Dtype::f32);
    if (!opts.dtype) {
      for (auto& p : model.parameters()) {
        if (p.tensor->defined() && is_floating(p.tensor->dtype())) {
          q.scale_dtype = p.tensor->dtype();
          break;
        }
      }
    }
    if (opts.dtype) {
      for (auto& p : model.parameters())
        if (p.tensor->defined() && is_floating(p.tensor->dtype())) *p.tensor = p.tensor->to(*opts.dtype);
    }
    std::vector<models::UnquantizedModule> skipped;
    const auto quantized = models::quantize_module(model, embedder ? 0 : llm->model->num_layers(), q, &skipped,
                                                   &opts.quantization_per_layer);
    if (quantized.empty()) {
      throw InvalidArgument("-q: no layer can be quantized with --q-group-size " + std::to_string(q.group_size) +
                            (skipped.empty() ? std::string() : " (" + skipped.front().path + ": " +
                                                                   skipped.front().reason + ")") +
                            "; nothing written");
    }
    opts.quantization = q;
    if (q.recipe.empty()) {
      std::printf("quantized %zu layers to %s %d bits (group size %d)", quantized.size(), quant_mode_name(q.mode),
                  q.bits, q.group_size);
    } else {
      std::printf("quantized %zu layers with %s (group size %d)", quantized.size(), q.recipe.c_str(), q.group_size);
    }
    if (skipped.empty()) {
      std::printf("\n");
    } else {
      std::printf("; left %zu unquantized:\n", skipped.size());
      for (const auto& s : skipped) std::printf("  %s: %s\n", s.path.c_str(), s.reason.c_str());
    }
  }
  io::write_folder_atomic(a.out, a.force, [&](const std::filesystem::path& staging) {
    if (embedder) models::embed::save_embedder(encoder, src, staging, opts);
    else models::save_model(model, src, staging, opts);
  });
  std::printf("wrote %s\n", a.out.c_str());
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  auto* cmd = app.add_subcommand("convert", "Convert / quantize a model folder, or import a llama2.c checkpoint");
  cmd->add_option("-m,--model", a->model, "Source model folder or Hugging Face repo id");
  cmd->add_option("-o,--out", a->out, "Destination folder")->required();
  cmd->add_flag("--force", a->force,
                "Replace a non-empty --out folder (the new model is written beside it and swapped in)");
  cmd->add_option("--from-llama2c", a->from_llama2c, "llama2.c checkpoint (MODEL.bin)");
  cmd->add_option("--tokenizer", a->tokenizer, "llama2.c tokenizer (tokenizer.bin) for --from-llama2c");
  cmd->add_flag("-q,--quantize", a->quantize, "Quantize (MLX layout)");
  cmd->add_option("--q-mode", a->q_mode, "affine (default), mxfp4, mxfp8 or nvfp4");
  cmd->add_option("--q-bits", a->q_bits,
                  "Bits per weight: affine 2, 3, 4, 5, 6, 8 (default 4); mxfp4 / nvfp4 4, mxfp8 8");
  cmd->add_option("--q-group-size", a->q_group_size, "Group size: affine 32, 64, 128 (default 64); mxfp 32, nvfp4 16");
  cmd->add_option("--quant-predicate", a->quant_predicate,
                  "mlx-lm's mixed-bits recipe (affine): mixed_2_6, mixed_3_4, mixed_3_6, mixed_4_6");
  cmd->add_option("--dtype", a->dtype, "Cast float weights: float32, float16, bfloat16");
  cmd->callback([a] { run_convert(*a); });
}

}  // namespace lmx::cli
