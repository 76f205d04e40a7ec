// lmx embed / lmx rerank on CUDA: the embedder and cross-encoder fixtures of
// tests/data/embed (transformers' tiny random models, the MLX-quantized ones included)
// give on the GPU what the CPU gives, within the parity tolerance. LMX_TEST_EMBED
// overrides the fixtures' folder (the device machine has no source tree); a missing
// fixture skips.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "cuda_test_util.h"
#include "lmx/io/safetensors.h"
#include "lmx/models/embed/cross_encoder.h"
#include "lmx/models/embed/embedder.h"
#include "lmx/models/embed/encoder.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;
namespace embed = models::embed;
using testing::relative_error;

fs::path fixture(const std::string& name) {
  const char* env = std::getenv("LMX_TEST_EMBED");
  return (env ? fs::path(env) : fs::path(LMX_SOURCE_DIR) / "tests/data/embed") / name;
}

// The reference batch of a fixture: ids [B, L] (i32), type ids where the model has them,
// and each row's real length.
embed::TokenBatch reference_batch(const fs::path& dir) {
  auto ref = io::SafetensorsFile::open(dir / "reference.safetensors");
  auto read = [&](const char* name) {
    const io::TensorInfo& info = ref.at(name);
    return Tensor::wrap(const_cast<std::byte*>(info.data), info.shape, info.dtype, ref.owner()).clone();
  };
  embed::TokenBatch b;
  b.ids = read("input_ids").to(Dtype::i32);
  if (ref.find("token_type_ids")) b.type_ids = read("token_type_ids").to(Dtype::i32);
  const auto mask = read("attention_mask").to_int_vector();
  const int64_t B = b.ids.dim(0), L = b.ids.dim(1);
  for (int64_t r = 0; r < B; ++r) {
    int64_t n = 0;
    while (n < L && mask[static_cast<size_t>(r * L + n)] != 0) ++n;
    b.lengths.push_back(n);
  }
  return b;
}

class CudaEmbed : public testing::CudaTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(CudaEmbed, HiddenStateAndEmbeddingsMatchCpu) {
  const fs::path dir = fixture(GetParam());
  if (!fs::exists(dir / "reference.safetensors")) GTEST_SKIP() << "no fixture at " << dir;
  // The MLX-quantized fixtures on exact f32 x on both devices: by default the CPU rounds x
  // to int16 and the GPU (f16 scales, bert_q8_g64_f16) to bf16, 1.5e-3 apart.
  const testing::ExactQuantActivations exact;
  const embed::TokenBatch batch = reference_batch(dir);
  embed::EmbedderOptions o;
  o.load_tokenizer = false;
  const embed::Embedder cpu = embed::Embedder::load(dir, o);
  o.device = Device::cuda();
  const embed::Embedder gpu = embed::Embedder::load(dir, o);
  const Tensor want_h = cpu.last_hidden_state(batch), got_h = gpu.last_hidden_state(batch);
  ASSERT_EQ(got_h.shape(), want_h.shape());
  // Rows past a length are not meaningful: compare the pooled rows, which read only real tokens.
  EXPECT_LE(relative_error(gpu.pool_and_project(got_h, batch.lengths), cpu.pool_and_project(want_h, batch.lengths)),
            1e-4);
  std::vector<std::vector<int32_t>> rows;
  const auto ids = batch.ids.to_int_vector();
  for (size_t r = 0; r < batch.lengths.size(); ++r) {
    const auto first = ids.begin() + static_cast<int64_t>(r) * batch.ids.dim(1);
    rows.emplace_back(first, first + batch.lengths[r]);
  }
  EXPECT_LE(relative_error(gpu.embed_tokens(rows).values, cpu.embed_tokens(rows).values), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Embed, CudaEmbed,
                         ::testing::Values("bert", "bert_dense", "roberta", "xlm_roberta", "distilbert", "modernbert",
                                           "nomic_bert", "qwen3", "gemma3_embedding", "bert_q4_g32",
                                           "bert_q8_g64_f16", "qwen3_q4_g32"));

class CudaRerank : public testing::CudaTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(CudaRerank, LogitsMatchCpu) {
  const fs::path dir = fixture(GetParam());
  if (!fs::exists(dir / "reference.safetensors")) GTEST_SKIP() << "no fixture at " << dir;
  const embed::TokenBatch batch = reference_batch(dir);
  const embed::CrossEncoder cpu = embed::CrossEncoder::load(dir);
  const embed::CrossEncoder gpu = embed::CrossEncoder::load(dir, Device::cuda());
  EXPECT_LE(relative_error(gpu.logits(batch), cpu.logits(batch)), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Embed, CudaRerank, ::testing::Values("bert_cross_encoder", "xlm_roberta_cross_encoder"));

}  // namespace
}  // namespace lmx
