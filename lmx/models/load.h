// Loading a model folder: config -> architecture, weights mapped zero-copy where the
// stored dtype is used as is, MLX quantization applied per module, strict matching of
// checkpoint tensors to parameters (one error lists every problem).
#pragma once

#include <filesystem>
#include <memory>

#include "lmx/io/model_folder.h"
#include "lmx/models/language_model.h"

namespace lmx::models {

struct LoadedModel {
  std::unique_ptr<LanguageModel> model;
  io::ModelFolder folder;
};

struct LoadOptions {
  bool prepare = true;  // make the backend's layout of quantized weights (CPU: repacked rows)
  // Where the weights go: read (mapped) on the host, then copied to this device before
  // they are prepared. backend_for(device) is asked first, so a build or machine without
  // it fails before anything is read.
  Device device = Device::cpu();
  // Ranks to split a decoder over (tensor parallelism, models::TensorParallelLM; threads of
  // this process on the CPU): 1 loads it whole.
  int tensor_parallel = 1;
};

LoadedModel load_model(const std::filesystem::path& dir, const LoadOptions& options = {});

// Assigns checkpoint tensors to the model's parameters after sanitize() and
// quantization set-up; throws FormatError listing every missing key, unused key and
// shape or dtype mismatch. `source` names the folder in messages.
void load_weights(LanguageModel& model, WeightDict weights, const nlohmann::json& config,
                  const std::string& source);

// The same for any module tree (no sanitize step): MLX quantization set up from `config`,
// then the strict matching. `architecture` names the model in the error.
void load_module_weights(nn::Module& model, WeightDict weights, const nlohmann::json& config,
                         const std::string& source, const std::string& architecture);

// Every tensor of a folder's safetensors files, wrapped without copying.
WeightDict read_weights(const io::ModelFolder& folder);

// The weights a model holds now. Quantized layers, once prepared, hold only their packed
// copy (their parameter tensors are released), so counting parameter tensors alone would
// miss them.
struct WeightBytes {
  size_t total = 0;              // dense parameter tensors + packed quantized copies
  size_t outside_allocator = 0;  // of which mapped files and packed copies: not in the
                                 // CPU allocator's statistics
};
WeightBytes weight_bytes(LanguageModel& model);

}  // namespace lmx::models
