// Models shared by the generation tests: the tiny HF fixtures (with transformers'
// reference logits) and stories260K imported from ../shared/data.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>

#include "lmx/generate/model_container.h"
#include "lmx/io/llama2c_import.h"
#include "lmx/io/safetensors.h"
#include "lmx/models/load.h"
#include "shared_data.h"

namespace lmx::testing {

inline std::filesystem::path fixture(const std::string& name) {
  return std::filesystem::path(LMX_SOURCE_DIR) / "tests/data/models" / name;
}

struct FixtureReference {
  Tensor ids;     // i64 [2, 12]
  Tensor logits;  // f32 [2, 12, vocab]
};

inline Tensor read_fixture_tensor(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorInfo& info = f.at(name);
  return Tensor::wrap(const_cast<std::byte*>(info.data), info.shape, info.dtype, f.owner()).clone();
}

inline FixtureReference fixture_reference(const std::string& name) {
  auto f = io::SafetensorsFile::open(fixture(name) / "reference.safetensors");
  return {read_fixture_tensor(f, "input_ids"), read_fixture_tensor(f, "logits")};
}

// max |a - b| / max(1, max |b|)
inline double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  double scale = 1.0, err = 0.0;
  for (float v : want) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i)
    err = std::max(err, static_cast<double>(std::fabs(got[i] - want[i])));
  return err / scale;
}

// stories260K imported once per process (null when the shared data is absent).
inline std::shared_ptr<generate::ModelContainer> stories260k() {
  static std::shared_ptr<generate::ModelContainer> c =
      []() -> std::shared_ptr<generate::ModelContainer> {
    const std::filesystem::path src = shared_data("models/stories260K");
    if (!std::filesystem::exists(src / "stories260K.bin")) return nullptr;
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("lmx-gen-stories-" + std::to_string(::getpid()));
    io::import_llama2c(src / "stories260K.bin", src / "tok512.bin", dir);
    auto loaded = generate::ModelContainer::load(dir.string());
    std::filesystem::remove_all(dir);
    return loaded;
  }();
  return c;
}

}  // namespace lmx::testing

#define LMX_REQUIRE_STORIES() \
  LMX_REQUIRE_SHARED(::lmx::testing::shared_data("models/stories260K/stories260K.bin"))
