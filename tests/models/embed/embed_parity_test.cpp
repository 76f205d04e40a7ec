// Embedders and cross-encoders against Hugging Face transformers + sentence-transformers:
// tiny random-weight folders made by tools/fixtures/make_embedder_fixtures.py on the GPU
// machine (tests/data/embed/<name>/reference.safetensors). Each test skips, saying so,
// while its fixture has not been generated.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "embed_test_util.h"
#include "lmx/base/error.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/io/safetensors.h"
#include "lmx/models/embed/cross_encoder.h"
#include "lmx/models/embed/embedder.h"
#include "lmx/models/embed/embedder_folder.h"
#include "lmx/models/embed/encoder.h"
#include "lmx/tokenizer/tokenizer.h"

namespace lmx::models::embed {
namespace {

namespace fs = std::filesystem;

constexpr const char* kNotGenerated =
    "fixture not generated yet: run tools/fixtures/make_embedder_fixtures.py on the GPU machine";
const fs::path kMiniLm = "../shared/data/tokenizers/all-MiniLM-L6-v2-tokenizer-and-config";

fs::path fixture(const std::string& name) { return fs::path(LMX_SOURCE_DIR) / "tests/data/embed" / name; }

Tensor read_tensor(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorInfo& info = f.at(name);
  return Tensor::wrap(const_cast<std::byte*>(info.data), info.shape, info.dtype, f.owner()).clone();
}

// max |a - b| / max(1, max |b|) over the elements both hold.
double relative_error(const std::vector<float>& g, const std::vector<float>& w) {
  EXPECT_EQ(g.size(), w.size());
  double scale = 1.0, err = 0.0;
  for (float v : w) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  for (size_t i = 0; i < std::min(g.size(), w.size()); ++i) err = std::max(err, static_cast<double>(std::fabs(g[i] - w[i])));
  return err / scale;
}

struct Batch {
  TokenBatch batch;
  std::vector<std::vector<int32_t>> rows;  // the real ids of each row
};

Batch read_batch(const io::SafetensorsFile& ref, const std::string& prefix = "") {
  Batch b;
  const Tensor ids = read_tensor(ref, prefix + "input_ids").to(Dtype::i32);
  const auto mask = read_tensor(ref, prefix + "attention_mask").to_int_vector();
  const auto idv = ids.to_int_vector();
  const int64_t B = ids.dim(0), L = ids.dim(1);
  b.batch.ids = ids;
  if (ref.contains(prefix + "token_type_ids")) b.batch.type_ids = read_tensor(ref, prefix + "token_type_ids").to(Dtype::i32);
  for (int64_t r = 0; r < B; ++r) {
    int64_t n = 0;
    while (n < L && mask[static_cast<size_t>(r * L + n)] != 0) ++n;
    b.batch.lengths.push_back(n);
    b.rows.emplace_back(idv.begin() + r * L, idv.begin() + r * L + n);
  }
  return b;
}

// The hidden states of the real tokens only (HF's rows at padding are not meaningful).
std::vector<float> real_rows(const Tensor& h, const std::vector<int64_t>& lengths) {
  std::vector<float> out;
  for (size_t b = 0; b < lengths.size(); ++b) {
    auto v = h.select(0, static_cast<int64_t>(b)).slice(0, 0, lengths[b]).contiguous().to_float_vector();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

class EmbedParity : public ::testing::TestWithParam<std::string> {};

// The last hidden state, the pooled (and projected) rows and the embeddings of `e` against
// a fixture's reference.safetensors.
void expect_reference(const Embedder& e, const fs::path& reference, double tolerance = 1e-4) {
  const auto ref = io::SafetensorsFile::open(reference);
  const Batch b = read_batch(ref);
  const Tensor hidden = e.last_hidden_state(b.batch);
  EXPECT_LE(relative_error(real_rows(hidden, b.batch.lengths), real_rows(read_tensor(ref, "last_hidden_state"), b.batch.lengths)),
            tolerance);
  const Tensor pooled = e.pool_and_project(hidden, b.batch.lengths);
  EXPECT_LE(relative_error(pooled.to_float_vector(), read_tensor(ref, "pooled").to_float_vector()), tolerance);
  // The whole path through embed_tokens (sorting, batching, normalizing) where the fixture
  // has no token types to pass.
  const Tensor want = read_tensor(ref, "embeddings");
  if (!b.batch.type_ids.defined() || b.batch.type_ids.to(Dtype::i32).to_int_vector() == std::vector<int64_t>(b.batch.ids.numel(), 0)) {
    EXPECT_LE(relative_error(e.embed_tokens(b.rows).values.to_float_vector(), want.to_float_vector()), tolerance);
  } else {
    Tensor got = e.normalizes() ? l2_normalize_rows(pooled) : pooled;
    EXPECT_LE(relative_error(got.to_float_vector(), want.to_float_vector()), tolerance);
  }
}

// An MLX-quantized fixture (it has quantization.json) as the LLM parity tests check one:
// with exact f32 activations in the quantized matmuls to 1e-4, with the default int16
// activations (~1e-5 per layer) to 1e-3.
void expect_quantized_or_plain_reference(const Embedder& e, const fs::path& dir) {
  if (!fs::exists(dir / "quantization.json")) return expect_reference(e, dir / "reference.safetensors");
  const ops::QuantActivations saved = ops::quant_activations();
  ops::set_quant_activations(ops::QuantActivations::f32);
  expect_reference(e, dir / "reference.safetensors", 1e-4);
  ops::set_quant_activations(ops::QuantActivations::int16);
  expect_reference(e, dir / "reference.safetensors", 1e-3);
  ops::set_quant_activations(saved);
}

TEST_P(EmbedParity, HiddenStatePooledAndNormalizedEmbeddings) {
  const fs::path dir = fixture(GetParam());
  if (!fs::exists(dir / "reference.safetensors")) GTEST_SKIP() << kNotGenerated << " (" << dir << ")";
  expect_quantized_or_plain_reference(Embedder::load(dir, test::ids_only()), dir);
}

// `lmx convert` without -q (load_encoder, then save_embedder) writes a folder that embeds
// bit for bit as the source: every tensor under a name the loader reads back, the
// quantized ones kept packed, the modules (Pooling, Dense, Normalize) copied.
TEST_P(EmbedParity, ConvertedFolderEmbedsTheSame) {
  const fs::path dir = fixture(GetParam());
  if (!fs::exists(dir / "reference.safetensors")) GTEST_SKIP() << kNotGenerated << " (" << dir << ")";
  test::TempDir tmp;
  LoadedEncoder loaded = load_encoder(dir);
  save_embedder(loaded, dir, tmp.path() / "out", {});
  const Batch b = read_batch(io::SafetensorsFile::open(dir / "reference.safetensors"));
  const Tensor want = Embedder::load(dir, test::ids_only()).embed_tokens(b.rows).values;
  const Tensor got = Embedder::load(tmp.path() / "out", test::ids_only()).embed_tokens(b.rows).values;
  EXPECT_EQ(got.to_float_vector(), want.to_float_vector());
}

INSTANTIATE_TEST_SUITE_P(Embed, EmbedParity,
                         ::testing::Values("bert", "bert_weighted", "bert_multi_pool", "bert_dense", "roberta",
                                           "xlm_roberta", "distilbert", "modernbert", "qwen3", "gemma3_embedding",
                                           "nomic_bert",
                                           // MLX-quantized folders (packed weights, scales, biases): the
                                           // reference is transformers on the dequantized weights.
                                           "bert_q4_g32", "bert_q8_g64_f16", "qwen3_q4_g32", "modernbert_q4_g32"));

// What `lmx convert -q` does (quantize_module, then save_embedder) to a quantized fixture's
// unquantized source/ gives the folder the fixture's MLX rule wrote: the same modules
// quantized and left, the same packed words, scales and biases, and the reference's outputs.
class QuantizedEmbedConvert : public ::testing::TestWithParam<std::string> {};

TEST_P(QuantizedEmbedConvert, SourceConvertsToTheFixture) {
  const fs::path dir = fixture(GetParam());
  if (!fs::exists(dir / "reference.safetensors")) GTEST_SKIP() << kNotGenerated << " (" << dir << ")";
  const nlohmann::json q = nlohmann::json::parse(std::ifstream(dir / "quantization.json"));
  QuantizeOptions o;
  o.bits = q["bits"].get<int>();
  o.group_size = q["group_size"].get<int>();
  o.scale_dtype = q["dtype"] == "float16" ? Dtype::f16 : Dtype::f32;
  LoadedEncoder loaded = load_encoder(dir / "source");
  std::vector<UnquantizedModule> skipped;
  std::set<std::string> done;
  // lmx's decoder embedders name the base model "model." (the LLM's tree); HF's AutoModel does not.
  const auto hf_name = [](std::string n) { return n.rfind("model.", 0) == 0 ? n.substr(6) : n; };
  for (const std::string& p : quantize_module(*loaded.encoder, 0, o, &skipped)) done.insert(hf_name(p));
  std::set<std::string> want;  // BERT's pooler is not an embedder's: lmx drops it
  for (const auto& p : q["quantized"]) {
    if (p.get<std::string>().rfind("pooler", 0) != 0) want.insert(p.get<std::string>());
  }
  EXPECT_EQ(done, want);
  std::set<std::string> left, want_left(q["unquantized"].begin(), q["unquantized"].end());
  for (const auto& s : skipped) left.insert(hf_name(s.path));
  EXPECT_EQ(left, want_left);

  test::TempDir tmp;
  SaveOptions so;
  so.quantization = o;
  save_embedder(loaded, dir / "source", tmp.path() / "q", so);
  const auto mine = io::SafetensorsFile::open(tmp.path() / "q" / "model.safetensors");
  const auto theirs = io::SafetensorsFile::open(dir / "model.safetensors");
  size_t compared = 0;
  for (const io::TensorInfo& a : mine.tensors()) {
    const std::string& name = a.name;
    const io::TensorInfo& b = theirs.at(hf_name(name));
    ASSERT_EQ(a.dtype, b.dtype) << name;
    ASSERT_EQ(a.shape, b.shape) << name;
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << name;
    ++compared;
  }
  EXPECT_GT(compared, 2 * want.size());
  for (const char* f : {"modules.json", "1_Pooling/config.json", "sentence_bert_config.json"}) {
    EXPECT_TRUE(fs::exists(tmp.path() / "q" / f)) << f;
  }
  expect_quantized_or_plain_reference(Embedder::load(tmp.path() / "q", test::ids_only()), dir);
}

INSTANTIATE_TEST_SUITE_P(Embed, QuantizedEmbedConvert,
                         ::testing::Values("bert_q4_g32", "bert_q8_g64_f16", "qwen3_q4_g32", "modernbert_q4_g32"));

class CrossEncoderParity : public ::testing::TestWithParam<std::string> {};

TEST_P(CrossEncoderParity, Scores) {
  const fs::path dir = fixture(GetParam());
  if (!fs::exists(dir / "reference.safetensors")) GTEST_SKIP() << kNotGenerated << " (" << dir << ")";
  const CrossEncoder c = CrossEncoder::load(dir);
  const auto ref = io::SafetensorsFile::open(dir / "reference.safetensors");
  const Batch b = read_batch(ref);
  EXPECT_LE(relative_error(c.logits(b.batch).to_float_vector(), read_tensor(ref, "scores").to_float_vector()), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Embed, CrossEncoderParity, ::testing::Values("bert_cross_encoder", "xlm_roberta_cross_encoder"));

// Qwen3-Reranker's yes/no form on a tiny random Qwen3ForCausalLM with a small word-level
// tokenizer (the real vocabulary would not fit a fixture): the prompt's ids, the "no" /
// "yes" logits of HF's left-padded batch, and the scores through the whole path.
TEST(CrossEncoderParityYesNo, Qwen3Reranker) {
  const fs::path dir = fixture("qwen3_reranker");
  if (!fs::exists(dir / "reference.safetensors")) GTEST_SKIP() << kNotGenerated << " (" << dir << ")";
  const CrossEncoder c = CrossEncoder::load(dir);
  ASSERT_TRUE(c.is_yes_no());
  EXPECT_EQ(c.num_labels(), 2);
  const auto ref = io::SafetensorsFile::open(dir / "reference.safetensors");
  const nlohmann::json meta = nlohmann::json::parse(std::ifstream(dir / "reference.json"));
  EXPECT_EQ(c.tokenizer().encode(meta["prefix"].get<std::string>(), false), meta["prefix_ids"].get<std::vector<int32_t>>());
  EXPECT_EQ(c.tokenizer().encode(meta["suffix"].get<std::string>(), false), meta["suffix_ids"].get<std::vector<int32_t>>());
  EXPECT_EQ(c.tokenizer().token_to_id("yes"), meta["yes_id"].get<int32_t>());
  EXPECT_EQ(c.tokenizer().token_to_id("no"), meta["no_id"].get<int32_t>());
  const auto docs = meta["documents"].get<std::vector<std::string>>();
  for (const std::string tag : {"default", "custom"}) {
    // HF's rows, right-padded here (each row runs alone, so the padding side is moot).
    const auto rows = meta["rows"][tag].get<std::vector<std::vector<int32_t>>>();
    size_t L = 0;
    for (const auto& r : rows) L = std::max(L, r.size());
    std::vector<int32_t> ids(rows.size() * L, 0);
    TokenBatch b;
    for (size_t i = 0; i < rows.size(); ++i) {
      std::copy(rows[i].begin(), rows[i].end(), ids.begin() + static_cast<std::ptrdiff_t>(i * L));
      b.lengths.push_back(static_cast<int64_t>(rows[i].size()));
    }
    b.ids = Tensor::from_vector(ids, {static_cast<int64_t>(rows.size()), static_cast<int64_t>(L)});
    EXPECT_LE(relative_error(c.logits(b).to_float_vector(), read_tensor(ref, tag + ".yes_no_logits").to_float_vector()),
              1e-4)
        << tag;
    RerankOptions o;
    if (tag == "custom") o.instruction = meta["instructions"]["custom"].get<std::string>();
    const RerankScores s = c.score(meta["query"].get<std::string>(), docs, o);
    EXPECT_EQ(s.truncated, 0u);
    EXPECT_LE(relative_error(s.scores, read_tensor(ref, tag + ".scores").to_float_vector()), 1e-4) << tag;
  }
}

TEST(EmbedParityText, MiniLmTokenizerEndToEnd) {
  const fs::path dir = fixture("minilm_text");
  if (!fs::exists(dir / "reference.safetensors")) GTEST_SKIP() << kNotGenerated << " (" << dir << ")";
  EmbedderOptions with_tokenizer;
  with_tokenizer.tokenizer_dir = kMiniLm;
  Embedder e = Embedder::load(dir, with_tokenizer);
  const auto ref = io::SafetensorsFile::open(dir / "reference.safetensors");
  nlohmann::json meta = nlohmann::json::parse(std::ifstream(dir / "reference.json"));
  const std::vector<std::string> texts = meta["texts"].get<std::vector<std::string>>();
  for (const std::string tag : {"plain", "query"}) {
    const Batch b = read_batch(ref, tag + ".");
    EmbedOptions o;
    if (tag == "query") o.prompt_name = "query";
    // The tokenizer (with the prompt and the cut at max_seq_length) against sentence-transformers.
    const std::string prompt = tag == "query" ? std::string("query: ") : "";
    for (size_t i = 0; i < texts.size(); ++i) {
      std::vector<int32_t> ids = e.tokenizer().encode(prompt + texts[i]);
      if (static_cast<int64_t>(ids.size()) > e.max_length()) {
        ids.resize(static_cast<size_t>(e.max_length() - 1));
        ids.push_back(102);  // [SEP] stays last
      }
      EXPECT_EQ(ids, b.rows[i]) << tag << " text " << i;
    }
    const Embeddings got = e.embed(texts, o);
    EXPECT_EQ(got.truncated, 1u);
    EXPECT_LE(relative_error(got.values.to_float_vector(), read_tensor(ref, tag + ".embeddings").to_float_vector()), 1e-4)
        << tag;
  }
}

TEST(EmbedParityText, PairTokenizationEqualsHf) {
  const fs::path file = fixture("pair_tokenization.json");
  if (!fs::exists(file)) GTEST_SKIP() << kNotGenerated << " (" << file << ")";
  if (!fs::exists(kMiniLm)) GTEST_SKIP() << "shared data missing: " << kMiniLm;
  const auto tok = tokenizer::Tokenizer::from_folder(kMiniLm);
  nlohmann::json j = nlohmann::json::parse(std::ifstream(file));
  for (const auto& p : j["pairs"]) {
    const tokenizer::Encoding e = tok.encode_pair(p["query"].get<std::string>(), p["document"].get<std::string>());
    EXPECT_EQ(e.ids, p["input_ids"].get<std::vector<int32_t>>()) << p["query"];
    EXPECT_EQ(e.type_ids, p["token_type_ids"].get<std::vector<int32_t>>()) << p["query"];
  }
  // longest_first truncation at 16, as the batch was encoded.
  const auto& batch = j["batch_max_length_16"];
  for (size_t i = 0; i < j["pairs"].size(); ++i) {
    tokenizer::Encoding e = tok.encode_pair(j["pairs"][i]["query"].get<std::string>(), j["pairs"][i]["document"].get<std::string>());
    truncate_pair_longest_first(e, 16);
    std::vector<int32_t> want = batch["input_ids"][i].get<std::vector<int32_t>>();
    std::vector<int32_t> want_types = batch["token_type_ids"][i].get<std::vector<int32_t>>();
    const auto mask = batch["attention_mask"][i].get<std::vector<int32_t>>();
    size_t n = 0;
    while (n < mask.size() && mask[n]) ++n;
    want.resize(n);
    want_types.resize(n);
    EXPECT_EQ(e.ids, want) << "pair " << i;
    EXPECT_EQ(e.type_ids, want_types) << "pair " << i;
  }
}

}  // namespace
}  // namespace lmx::models::embed
