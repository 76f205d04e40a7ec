// The tiny HF llama fixture (tests/data/models/llama: 2 layers, GQA, llama3 RoPE, f32) with
// transformers' logits, loaded for the training tests; a temporary folder per test and a
// check of an error's text.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/models/quantize.h"
#include "lmx/train/lora.h"

#include "lmx/io/safetensors.h"
#include "lmx/models/load.h"
#include "lmx/models/transformer.h"

namespace lmx::testing {

// A tiny transformers fixture of tests/data/models (llama by default).
inline std::filesystem::path tiny_model_dir(const std::string& name = "llama") {
  return std::filesystem::path(LMX_SOURCE_DIR) / "tests/data/models" / name;
}
inline std::filesystem::path tiny_llama_dir() { return tiny_model_dir("llama"); }

inline models::LoadedModel load_tiny(const std::string& name, bool prepare = true) {
  models::LoadOptions o;
  o.prepare = prepare;
  return models::load_model(tiny_model_dir(name), o);
}
inline models::LoadedModel load_tiny_llama(bool prepare = true) { return load_tiny("llama", prepare); }

// A model folder of tests/data/models quantized in memory (then prepared), as a
// quantized checkpoint would load.
inline models::LoadedModel load_quantized(const std::string& name, int bits, int group_size) {
  auto m = models::load_model(std::filesystem::path(LMX_SOURCE_DIR) / "tests/data/models" / name, {.prepare = false});
  models::QuantizeOptions q;
  q.bits = bits;
  q.group_size = group_size;
  models::quantize_model(*m.model, q);
  m.model->prepare_for_inference();
  return m;
}

inline models::TransformerLM& transformer(models::LoadedModel& m) {
  return dynamic_cast<models::TransformerLM&>(*m.model);
}

// A copy of tensor `name` of a reference file.
inline Tensor reference(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorInfo& info = f.at(name);
  return Tensor::wrap(const_cast<std::byte*>(info.data), info.shape, info.dtype, f.owner()).clone();
}

// Tensor `name` of a fixture's transformers reference (input_ids, logits, ...).
inline Tensor fixture_tensor(const std::string& name, const std::string& model = "llama") {
  return reference(io::SafetensorsFile::open(tiny_model_dir(model) / "reference.safetensors"), name);
}

// max |got - want| / max(1, max |want|) (logits).
inline double max_rel_diff(const std::vector<float>& got, const std::vector<float>& want) {
  double scale = 1.0, err = 0.0;
  for (float v : want) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  for (size_t i = 0; i < want.size(); ++i) err = std::max(err, static_cast<double>(std::fabs(got[i] - want[i])));
  return err / scale;
}

// max |got - want| / max |want|.
inline double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    num = std::max(num, static_cast<double>(std::fabs(got[i] - want[i])));
    den = std::max(den, static_cast<double>(std::fabs(want[i])));
  }
  return num / den;
}

// What to train on the last `num_layers` blocks (the other fields at their defaults).
inline train::LoraConfig tuning(train::FineTuneType type, int64_t num_layers, int64_t rank = 8) {
  train::LoraConfig c;
  c.type = type;
  c.num_layers = num_layers;
  c.rank = rank;
  return c;
}

// A fresh folder under the temp dir named after the process and test (and `suffix`, for
// another one in the same test), removed at the end.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& suffix = "")
      : path(std::filesystem::temp_directory_path() /
             ("lmx-train-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + suffix)) {
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::filesystem::path write(const std::string& name, const std::string& content) const {
    std::ofstream(path / name) << content;
    return path / name;
  }
};

// f() must throw an E (an lmx::Error by default) whose text holds every one of `parts`.
template <class E = Error, class F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "expected an error";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

}  // namespace lmx::testing
