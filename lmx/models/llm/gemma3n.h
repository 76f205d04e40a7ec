// gemma3n_text and gemma4_text: the language models of Gemma 3n and Gemma 4 share one model
// (lmx/models/llm/gemma3n.cpp): Gemma layers with sandwich norms, norms that scale by w,
// per-head q / k norms, RMS-normed values, unscaled attention, per-layer inputs and KV
// sharing; Gemma 3n adds AltUp streams and a LAuReL branch, Gemma 4 a per-layer scalar
// (lmx/models/llm/gemma4.cpp).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmx/models/config_reader.h"
#include "lmx/models/language_model.h"
#include "lmx/models/transformer.h"
#include "lmx/nn/altup.h"
#include "lmx/nn/moe.h"

namespace lmx::models::llm {

struct PerLayerGemmaSpec {
  TransformerSpec base;            // embeddings, attention and MLP options per layer, ropes
  std::vector<std::string> types;  // per layer: "full_attention" | "sliding_attention"
  std::vector<int> rope_of;        // per layer: index into base.ropes
  std::vector<int64_t> kv_source;  // per layer: the layer whose keys it reuses (-1: its own)
  int64_t cache_layers = 0;        // the layers before the shared ones
  int64_t per_layer_vocab = 0, per_layer_dim = 0;
  int64_t laurel_rank = 0;         // 0: no LAuReL branch
  nn::AltUpOptions altup;          // streams 1: no AltUp (the per-layer input joins the residual)
  bool altup_correct_scale = true;
  bool layer_scalar = false;       // Gemma 4: each layer's output times its "layer_scalar"
  // Gemma 4 26B-A4B (enable_moe_block): beside the dense MLP each layer has a MoE
  // ("router.*", "experts.*" at the layer's top level) routed on the layer's input.
  std::optional<nn::MoeOptions> moe;
  nn::Activation act = nn::Activation::gelu_tanh;
};

// What both read alike: the base spec, activation, soft-cap, tying, per-layer input sizes,
// layer types and windows, attention switches and the KV sharing (num_kv_shared_layers).
// Ropes, AltUp, LAuReL and MLP widths are the caller's.
PerLayerGemmaSpec per_layer_gemma_spec(const ConfigReader& c, const std::string& model_type);
std::unique_ptr<LanguageModel> per_layer_gemma(PerLayerGemmaSpec spec);

std::unique_ptr<LanguageModel> gemma3n_text(const ConfigReader& c);
std::unique_ptr<LanguageModel> gemma4_text(const ConfigReader& c);

}  // namespace lmx::models::llm
