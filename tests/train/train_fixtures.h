// The tiny HF llama fixture (tests/data/models/llama: 2 layers, GQA, llama3 RoPE, f32) with
// transformers' logits, loaded for the training tests.
#pragma once

#include <filesystem>
#include <memory>

#include "lmx/io/safetensors.h"
#include "lmx/models/load.h"
#include "lmx/models/transformer.h"

namespace lmx::testing {

inline std::filesystem::path tiny_llama_dir() {
  return std::filesystem::path(LMX_SOURCE_DIR) / "tests/data/models/llama";
}

inline models::LoadedModel load_tiny_llama(bool prepare = true) {
  models::LoadOptions o;
  o.prepare = prepare;
  return models::load_model(tiny_llama_dir(), o);
}

inline models::TransformerLM& transformer(models::LoadedModel& m) {
  return dynamic_cast<models::TransformerLM&>(*m.model);
}

inline Tensor fixture_tensor(const std::string& name) {
  auto f = io::SafetensorsFile::open(tiny_llama_dir() / "reference.safetensors");
  const io::TensorInfo& info = f.at(name);
  return Tensor::wrap(const_cast<std::byte*>(info.data), info.shape, info.dtype, f.owner()).clone();
}

}  // namespace lmx::testing
