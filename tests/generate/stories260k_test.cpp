// The real trained model: Karpathy's stories260K (llama2.c format), imported into an HF
// llama folder, must reproduce llama2.c's own output: the 256 greedy token ids, and the
// sampled run (temperature 1, top-p 0.9, seed 133742) when llama2.c's xorshift RNG and
// top-p sampler are replayed over lmx's logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "lmx/generate/generate.h"
#include "lmx/generate/model_container.h"
#include "lmx/generate/simple_kv_cache.h"
#include "lmx/io/llama2c_import.h"
#include "shared_data.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;

class Stories260K : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fs::path src = testing::shared_data("models/stories260K");
    if (!fs::exists(src / "stories260K.bin")) return;
    dir_ = new fs::path(fs::temp_directory_path() / ("lmx-stories260k-" + std::to_string(::getpid())));
    io::import_llama2c(src / "stories260K.bin", src / "tok512.bin", *dir_);
    container_ = generate::ModelContainer::load(dir_->string());
    std::ifstream(src / "expected_outputs.json") >> *(expected_ = new nlohmann::json());
  }
  static void TearDownTestSuite() {
    if (dir_) fs::remove_all(*dir_);
  }
  void SetUp() override { LMX_REQUIRE_SHARED(testing::shared_data("models/stories260K/stories260K.bin")); }

  static fs::path* dir_;
  static std::shared_ptr<generate::ModelContainer> container_;
  static nlohmann::json* expected_;
};
fs::path* Stories260K::dir_ = nullptr;
std::shared_ptr<generate::ModelContainer> Stories260K::container_;
nlohmann::json* Stories260K::expected_ = nullptr;

TEST_F(Stories260K, GreedyIdsEqualLlama2c) {
  const auto want = (*expected_)["greedy"]["generated_ids_after_bos"].get<std::vector<int32_t>>();
  generate::GenerateParameters p;
  p.temperature = 0.0f;
  p.max_tokens = static_cast<int64_t>(want.size());
  generate::GenerateOptions opts;  // no EOS: llama2.c runs all steps
  std::string text;
  generate::Generation gen(container_->model(), container_->tokenizer(), {1}, p, opts);
  while (auto e = gen.next()) {
    if (e->kind == generate::GenerationEvent::Kind::text) text += e->text;
  }
  EXPECT_EQ(gen.tokens(), want);
  std::string stdout_text = (*expected_)["greedy"]["stdout"].get<std::string>();
  EXPECT_EQ(text + "\n", stdout_text);
}

// llama2.c's sampler (run.c), replayed exactly: xorshift64* coins, softmax at the
// temperature, top-p over probabilities sorted descending.
struct Llama2cSampler {
  uint64_t state;
  float random_f32() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    const uint32_t u = static_cast<uint32_t>((state * 0x2545F4914F6CDD1Dull) >> 32);
    return static_cast<float>(u >> 8) / 16777216.0f;
  }
  int sample(std::vector<float> logits, float temperature, float topp) {
    for (float& l : logits) l /= temperature;
    float m = *std::max_element(logits.begin(), logits.end()), sum = 0.0f;
    for (float& l : logits) sum += (l = std::exp(l - m));
    for (float& l : logits) l /= sum;
    const float coin = random_f32();
    const int n = static_cast<int>(logits.size());
    const float cutoff = (1.0f - topp) / static_cast<float>(n - 1);
    std::vector<int> idx;
    for (int i = 0; i < n; ++i)
      if (logits[i] >= cutoff) idx.push_back(i);
    std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return logits[a] > logits[b]; });
    float cum = 0.0f;
    size_t last = idx.size() - 1;
    for (size_t i = 0; i < idx.size(); ++i) {
      cum += logits[idx[i]];
      if (cum > topp) {
        last = i;
        break;
      }
    }
    const float r = coin * cum;
    float cdf = 0.0f;
    for (size_t i = 0; i <= last; ++i) {
      cdf += logits[idx[i]];
      if (r < cdf) return idx[i];
    }
    return idx[last];
  }
};

TEST_F(Stories260K, SampledRunEqualsLlama2cWithItsOwnRng) {
  auto& model = container_->model();
  nn::KVCacheList cache;
  for (int i = 0; i < model.num_layers(); ++i) cache.push_back(std::make_unique<generate::SimpleKVCache>());
  Llama2cSampler s{133742};
  std::vector<int32_t> ids;
  int32_t token = 1;
  for (int pos = 0; pos < 256; ++pos) {
    Tensor logits = model.forward(Tensor::from_vector(std::vector<int32_t>{token}, {1, 1}), &cache);
    std::vector<float> row = logits.to_float_vector();
    const int next = s.sample(row, 1.0f, 0.9f);
    if (next == 1) break;  // llama2.c stops at BOS
    ids.push_back(next);
    token = next;
  }
  std::string text = container_->tokenizer().decode(ids, true);
  EXPECT_EQ(text + "\n", (*expected_)["sampled"]["stdout"].get<std::string>());
}

}  // namespace
}  // namespace lmx
