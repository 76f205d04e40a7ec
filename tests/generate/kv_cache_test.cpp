// KV cache kinds against independent references: rotating caches (windowed layers and
// max_kv_size) against transformers' full-sequence logits and a brute-force visibility
// rule, quantized caches against the same attention over dequantized keys and against
// the reference logits, trim + re-prefill against a fresh prefill.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <fstream>
#include <random>
#include <set>

#include "lmx/base/error.h"
#include "lmx/generate/chunked_kv_cache.h"
#include "lmx/generate/generate.h"
#include "lmx/generate/quantized_kv_cache.h"
#include "lmx/generate/rotating_kv_cache.h"
#include "lmx/generate/simple_kv_cache.h"
#include "lmx/core/ops/random.h"
#include "lmx/core/ops/linalg.h"
#include "lmx/models/random_init.h"
#include "lmx/models/registry.h"
#include "test_models.h"

namespace lmx {
namespace {

using generate::GenerateParameters;

Tensor row_ids(const Tensor& ids, int64_t b, int64_t from, int64_t to) {
  return ids.slice(0, b, b + 1).slice(1, from, to).contiguous();
}

// Feeds the reference ids of every batch row in chunks of the given sizes (cycled),
// comparing each position's logits with transformers' full-sequence logits.
void expect_chunked_logits_match(models::LanguageModel& model,
                                 const testing::FixtureReference& ref,
                                 const GenerateParameters& params,
                                 const std::vector<int64_t>& chunks,
                                 double tol,
                                 const std::string& what) {
  const int64_t B = ref.ids.dim(0), L = ref.ids.dim(1);
  for (int64_t b = 0; b < B; ++b) {
    nn::KVCacheList cache = generate::make_cache(model, params);
    int64_t pos = 0;
    for (size_t c = 0; pos < L; ++c) {
      const int64_t n = std::min(chunks[c % chunks.size()], L - pos);
      Tensor logits = model.forward(row_ids(ref.ids, b, pos, pos + n), &cache);
      generate::maybe_quantize_kv_cache(cache, params);
      for (int64_t i = 0; i < n; ++i) {
        auto got = logits.select(0, 0).select(0, i).to_float_vector();
        auto want = ref.logits.select(0, b).select(0, pos + i).to_float_vector();
        ASSERT_LE(testing::relative_error(got, want), tol)
            << what << ": row " << b << " position " << pos + i;
      }
      pos += n;
    }
  }
}

class WindowedModels : public ::testing::TestWithParam<std::string> {};

// gemma2 / gemma3_text / starcoder2 have sliding_window 4 < 12 tokens: their windowed
// layers get rotating caches of 4 positions, which wrap several times; token by token
// and in chunks (multi-token updates after wrapping) the logits equal transformers'
// full-sequence logits.
TEST_P(WindowedModels, RotatingCachesReproduceFullSequenceLogits) {
  auto loaded = models::load_model(testing::fixture(GetParam()));
  auto& model = *loaded.model;
  const auto ref = testing::fixture_reference(GetParam());
  nn::KVCacheList cache = generate::make_cache(model, {});
  const auto windows = model.layer_windows();
  int rotating = 0;
  for (size_t i = 0; i < cache.size(); ++i) {
    auto* r = dynamic_cast<generate::RotatingKVCache*>(cache[i].get());
    if (windows[i] > 0) {
      ASSERT_NE(r, nullptr) << "layer " << i;
      EXPECT_EQ(r->max_size(), windows[i]);
      EXPECT_EQ(r->keep(), 0);
      ++rotating;
    } else {
      EXPECT_EQ(r, nullptr) << "layer " << i;
    }
  }
  EXPECT_GT(rotating, 0);
  expect_chunked_logits_match(model, ref, {}, {1}, 1e-4, "token by token");
  expect_chunked_logits_match(model, ref, {}, {3}, 1e-4, "chunks of 3");
  expect_chunked_logits_match(model, ref, {}, {5, 1, 1, 2, 3}, 1e-4, "mixed chunks");
  // max_kv_size >= length turns full-attention layers into rotating caches that never
  // evict: still exact.
  GenerateParameters p;
  p.max_kv_size = 16;
  expect_chunked_logits_match(model, ref, p, {2, 1, 4}, 1e-4, "max_kv_size 16");
}

INSTANTIATE_TEST_SUITE_P(Fixtures,
                         WindowedModels,
                         ::testing::Values("gemma2", "gemma3_text", "starcoder2"));
INSTANTIATE_TEST_SUITE_P(DenseFixtures,
                         WindowedModels,
                         ::testing::Values("cohere2", "olmo3", "exaone4", "ministral", "gemma3n_text",
                                           "gemma4_text", "gemma4_text_k_eq_v", "gemma4_text_moe"));

// Gemma 3n without a reference (the gemma3n_text fixture has one): random weights, 16
// tokens past a window of 3, 6 layers of which the last 3 reuse the keys and values of
// layers 1 (full attention) and 2 (sliding), 3 AltUp streams with the second active,
// gate sparsity in two layers, a per-layer table smaller than the vocabulary. Only the
// 3 layers that own keys get a cache, and cached decoding (rotating caches on the sliding
// layers, token by token, in chunks, under max_kv_size) equals the full forward.
TEST(Gemma3n, CachedDecodeWithSharedKeysEqualsFullForward) {
  const nlohmann::json cfg = {
      {"model_type", "gemma3n_text"}, {"vocab_size", 64}, {"hidden_size", 32}, {"num_hidden_layers", 6},
      {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"head_dim", 8},
      {"intermediate_size", {48, 48, 64, 48, 64, 48}}, {"sliding_window", 3},
      {"layer_types", {"sliding_attention", "full_attention", "sliding_attention", "sliding_attention",
                       "full_attention", "sliding_attention"}},
      {"num_kv_shared_layers", 3}, {"activation_sparsity_pattern", {0.95, 0.9, 0.0, 0.0, 0.0, 0.0}},
      {"vocab_size_per_layer_input", 48}, {"hidden_size_per_layer_input", 8}, {"laurel_rank", 4},
      {"altup_num_inputs", 3}, {"altup_active_idx", 1}, {"final_logit_softcapping", 30.0}};
  auto model = models::create_model(models::ConfigReader(cfg, "gemma3n/config.json"));
  ops::RandomGenerator rng(3);
  for (auto& p : model->parameters()) {
    *p.tensor = p.shape.size() == 1 ? rng.uniform(p.shape, 0.5f, 1.5f) : rng.uniform(p.shape, -0.3f, 0.3f);
  }
  model->prepare_for_inference();
  EXPECT_EQ(model->num_layers(), 3);
  EXPECT_EQ(model->layer_windows(), (std::vector<int64_t>{3, 0, 3}));
  std::vector<int32_t> v;
  for (int i = 0; i < 2 * 16; ++i) v.push_back(static_cast<int32_t>(rng.next_u64() % 64));
  const Tensor ids = Tensor::from_vector(v, {2, 16});
  const testing::FixtureReference ref{ids, model->forward(ids, nullptr)};
  expect_chunked_logits_match(*model, ref, {}, {1}, 1e-5, "token by token");
  expect_chunked_logits_match(*model, ref, {}, {5, 1, 3}, 1e-5, "mixed chunks");
  GenerateParameters p;
  p.max_kv_size = 20;
  expect_chunked_logits_match(*model, ref, p, {2, 7}, 1e-5, "max_kv_size 20");
}

class CachedModels : public ::testing::TestWithParam<std::string> {};

// Learned positions (gpt2) continue from the cache offset, per-head fused qkv (gpt_neox)
// and parallel residuals (phi) through a simple cache: token by token and in chunks,
// transformers' full-sequence logits.
TEST_P(CachedModels, IncrementalDecodeReproducesFullSequenceLogits) {
  auto loaded = models::load_model(testing::fixture(GetParam()));
  const auto ref = testing::fixture_reference(GetParam());
  expect_chunked_logits_match(*loaded.model, ref, {}, {1}, 1e-4, "token by token");
  expect_chunked_logits_match(*loaded.model, ref, {}, {5, 1, 2, 4}, 1e-4, "mixed chunks");
}

INSTANTIATE_TEST_SUITE_P(DenseFixtures, CachedModels, ::testing::Values("gpt2", "gpt_neox", "phi", "nanochat"));
// Packed ternary BitNet: decode steps (one row: the shared-input 2-bit kernels, the
// activation rounding once for q / k / v and gate / up) against transformers' BitLinear.
INSTANTIATE_TEST_SUITE_P(PackedTernary, CachedModels, ::testing::Values("bitnet_packed", "bitnet_packed_auto"));

TEST(MakeCache, MaxKvSizeGivesRotatingCachesWithKeep4) {
  auto loaded = models::load_model(testing::fixture("llama"));
  GenerateParameters p;
  p.max_kv_size = 32;
  auto cache = generate::make_cache(*loaded.model, p);
  ASSERT_EQ(cache.size(), 2u);
  for (auto& c : cache) {
    auto* r = dynamic_cast<generate::RotatingKVCache*>(c.get());
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->max_size(), 32);
    EXPECT_EQ(r->keep(), 4);
  }
  p.max_kv_size = 4;
  EXPECT_THROW(generate::make_cache(*loaded.model, p), InvalidArgument);
  const auto ref = testing::fixture_reference("llama");
  p.max_kv_size = 12;  // exactly the sequence length: never evicts
  expect_chunked_logits_match(*loaded.model, ref, p, {1}, 1e-4, "max_kv_size 12");
  expect_chunked_logits_match(*loaded.model, ref, p, {7, 5}, 1e-4, "max_kv_size 12, chunks");
}

// The key at position p is the vector (p, p + 0.5, ...): what a query sees identifies
// positions exactly. After every update (sizes mixing single steps and long chunks, so
// the ring wraps in both paths) the visible keys of each new query must be exactly
// {j <= p : j < keep or p - j < max_size - keep} (and within the window), each with the
// key stored for that position.
TEST(RotatingKVCache, VisibleKeysFollowTheRuleAfterWrapping) {
  for (int64_t keep : {0, 2}) {
    for (int64_t window : {0, 3}) {
      const int64_t max_size = 6;
      generate::RotatingKVCache cache(max_size, keep, /*step=*/4);
      int64_t pos = 0;
      for (int64_t n : {1, 1, 3, 1, 1, 1, 1, 5, 1, 1, 2, 1, 1, 1, 1, 1, 7, 1}) {
        std::vector<float> kv(static_cast<size_t>(n * 2));
        for (int64_t i = 0; i < n; ++i) {
          kv[static_cast<size_t>(2 * i)] = static_cast<float>(pos + i);
          kv[static_cast<size_t>(2 * i + 1)] = static_cast<float>(pos + i) + 0.5f;
        }
        Tensor k = Tensor::from_vector(kv, {1, 1, n, 2});
        auto [keys, values] = cache.update_and_fetch(k, k);
        Tensor mask = cache.make_mask(n, window);
        const int64_t L = keys.dim(2);
        auto kvals = keys.contiguous().to_float_vector();
        std::vector<float> m(static_cast<size_t>(n * L), 0.0f);
        if (mask.defined()) {
          ASSERT_EQ(mask.shape(), (Shape{n, L}));
          m = mask.to_float_vector();
        } else {
          // No mask: keys contiguous from position 0, plain causal + window.
          ASSERT_EQ(cache.first_position(), 0);
          for (int64_t i = 0; i < n; ++i) {
            for (int64_t j = 0; j < L; ++j) {
              const int64_t p = pos + i;
              if (j > p || (window > 0 && p - j >= window))
                m[static_cast<size_t>(i * L + j)] = -1.0f;
            }
          }
        }
        for (int64_t i = 0; i < n; ++i) {
          const int64_t p = pos + i;
          std::set<int64_t> seen, want;
          for (int64_t j = 0; j < L; ++j) {
            if (m[static_cast<size_t>(i * L + j)] != 0.0f) continue;
            const auto key_pos = static_cast<int64_t>(kvals[static_cast<size_t>(2 * j)]);
            EXPECT_EQ(kvals[static_cast<size_t>(2 * j + 1)], static_cast<float>(key_pos) + 0.5f);
            EXPECT_TRUE(seen.insert(key_pos).second) << "position " << key_pos << " visible twice";
          }
          for (int64_t j = 0; j <= p; ++j) {
            if ((j < keep || p - j < max_size - keep) && (window == 0 || p - j < window))
              want.insert(j);
          }
          EXPECT_EQ(seen, want) << "keep " << keep << " window " << window << " query " << p;
        }
        pos += n;
        EXPECT_EQ(cache.offset(), pos);
      }
    }
  }
}

TEST(RotatingKVCache, TrimmableOnlyBeforeWrapping) {
  generate::RotatingKVCache cache(8, 0);
  Tensor k = Tensor::full({1, 2, 5, 4}, 1.0);
  cache.update_and_fetch(k, k);
  EXPECT_TRUE(cache.is_trimmable());
  EXPECT_EQ(cache.trim(2), 2);
  EXPECT_EQ(cache.offset(), 3);
  cache.update_and_fetch(k, k);  // 8 positions: full
  EXPECT_FALSE(cache.is_trimmable());
}

// Trim + re-prefill equals a fresh prefill: the stale positions must be gone, not just
// hidden.
TEST(CacheTrim, TrimAndRePrefillEqualsFreshPrefill) {
  auto loaded = models::load_model(testing::fixture("llama"));
  auto& model = *loaded.model;
  const auto ref = testing::fixture_reference("llama");
  for (auto params : {GenerateParameters{}, [] {
                        GenerateParameters p;
                        p.max_kv_size = 32;
                        return p;
                      }()}) {
    nn::KVCacheList fresh = generate::make_cache(model, params);
    model.forward(row_ids(ref.ids, 0, 0, 3), &fresh);
    Tensor want = model.forward(row_ids(ref.ids, 1, 3, 6), &fresh);
    // The other row's continuation first, then trimmed away.
    nn::KVCacheList cache = generate::make_cache(model, params);
    model.forward(row_ids(ref.ids, 0, 0, 3), &cache);
    auto* full_layer = cache[1].get();
    model.forward(row_ids(ref.ids, 0, 3, 5), &cache);
    ASSERT_TRUE(generate::can_trim_cache(cache));
    EXPECT_EQ(generate::trim_cache(cache, 2), 2);
    EXPECT_EQ(full_layer->offset(), 3);
    Tensor got = model.forward(row_ids(ref.ids, 1, 3, 6), &cache);
    EXPECT_LE(testing::relative_error(got.to_float_vector(), want.to_float_vector()), 1e-6);
  }
  // A wrapped window (gemma2: 4 positions) cannot be trimmed.
  auto gemma2 = models::load_model(testing::fixture("gemma2"));
  nn::KVCacheList cache = generate::make_cache(*gemma2.model, {});
  gemma2.model->forward(row_ids(testing::fixture_reference("gemma2").ids, 0, 0, 6), &cache);
  EXPECT_FALSE(generate::can_trim_cache(cache));
  EXPECT_THROW(generate::trim_cache(cache, 1), InvalidArgument);
}

// A simple cache that stores keys quantized-then-dequantized: attention over it is the
// exact math the quantized attention path must reproduce.
class DequantizedCache : public nn::KVCache {
 public:
  DequantizedCache(int group, int bits, int v_bits) : group_(group), bits_(bits), v_bits_(v_bits) {}
  int64_t offset() const override { return inner_.offset(); }
  std::pair<Tensor, Tensor> update_and_fetch(const Tensor& k, const Tensor& v) override {
    auto qk = generate::quantize_rows(k, group_, bits_);
    auto qv = generate::quantize_rows(v, group_, v_bits_);
    return inner_.update_and_fetch(generate::dequantize_rows(qk[0], qk[1], qk[2], group_, bits_),
                                   generate::dequantize_rows(qv[0], qv[1], qv[2], group_, v_bits_));
  }
  std::vector<Tensor> state() const override { return inner_.state(); }
  std::string class_name() const override { return "DequantizedCache"; }
  std::unique_ptr<nn::KVCache> copy() const override { return nullptr; }

 private:
  int group_, bits_, v_bits_;
  generate::SimpleKVCache inner_;
};

// qwen3 (head_dim 32): quantized attention equals attention over the dequantized keys
// (1e-5: only the summation order differs), and stays within a stated distance of the
// fp32 reference logits: 8 bits 2e-2, 4 bits 1.5e-1, 3-bit values 4.5e-1
// (relative to the largest logit; random tiny weights make these loose).
TEST(QuantizedKVCache, AttentionEqualsDequantizedAndStaysNearReference) {
  auto loaded = models::load_model(testing::fixture("qwen3"));
  auto& model = *loaded.model;
  const auto ref = testing::fixture_reference("qwen3");
  struct Case {
    int bits, v_bits;
    double tol;
  };
  for (const Case& c :
       {Case{8, 8, 2e-2}, Case{4, 4, 1.5e-1}, Case{8, 4, 1.5e-1}, Case{6, 3, 4.5e-1}}) {
    nn::KVCacheList q, d;
    for (int i = 0; i < 2; ++i) {
      q.push_back(std::make_unique<generate::QuantizedKVCache>(32, c.bits, c.v_bits));
      d.push_back(std::make_unique<DequantizedCache>(32, c.bits, c.v_bits));
    }
    for (int64_t pos = 0, n = 0; pos < 12; pos += n) {
      n = pos == 0 ? 5 : 1;
      Tensor lq = model.forward(row_ids(ref.ids, 0, pos, pos + n), &q);
      Tensor ld = model.forward(row_ids(ref.ids, 0, pos, pos + n), &d);
      ASSERT_LE(testing::relative_error(lq.to_float_vector(), ld.to_float_vector()), 1e-5)
          << "bits " << c.bits << "/" << c.v_bits << " at " << pos;
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_LE(
            testing::relative_error(lq.select(0, 0).select(0, i).to_float_vector(),
                                    ref.logits.select(0, 0).select(0, pos + i).to_float_vector()),
            c.tol)
            << "bits " << c.bits << "/" << c.v_bits << " position " << pos + i;
      }
    }
  }
  // Through make_cache / maybe_quantize_kv_cache: the first chunk runs unquantized, then
  // the caches switch (quantized_kv_start 4 < offset 5).
  GenerateParameters p;
  p.kv_bits = 8;
  p.kv_group_size = 32;
  p.quantized_kv_start = 4;
  nn::KVCacheList cache = generate::make_cache(model, p);
  model.forward(row_ids(ref.ids, 0, 0, 3), &cache);
  generate::maybe_quantize_kv_cache(cache, p);
  EXPECT_FALSE(cache[0]->is_quantized());
  model.forward(row_ids(ref.ids, 0, 3, 5), &cache);
  generate::maybe_quantize_kv_cache(cache, p);
  EXPECT_TRUE(cache[0]->is_quantized());
  EXPECT_EQ(cache[0]->offset(), 5);
  expect_chunked_logits_match(model, ref, p, {5, 1}, 2e-2, "kv_bits 8 via make_cache");
}

TEST(QuantizedKVCache, RejectsBadBitsGroupsAndHeadDims) {
  EXPECT_THROW(generate::QuantizedKVCache(48, 4), InvalidArgument);
  EXPECT_THROW(generate::QuantizedKVCache(64, 7), InvalidArgument);
  EXPECT_THROW(generate::QuantizedKVCache(64, 4, 1), InvalidArgument);
  generate::QuantizedKVCache c(64, 4);
  Tensor k = Tensor::full({1, 1, 2, 32}, 1.0);  // head_dim 32 < group 64
  EXPECT_THROW(c.update_and_fetch_quantized(k, k), InvalidArgument);
}

TEST(QuantizedKVCache, TrimAndCopyKeepPositions) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  std::vector<float> data(1 * 2 * 6 * 64);
  for (auto& x : data) x = nd(rng);
  Tensor k = Tensor::from_vector(data, {1, 2, 6, 64});
  generate::QuantizedKVCache c(64, 8);
  c.update_and_fetch_quantized(k, k);
  auto before = c.dequantized().first.to_float_vector();
  auto copy = c.copy();
  EXPECT_EQ(c.trim(2), 2);
  EXPECT_EQ(c.offset(), 4);
  EXPECT_EQ(copy->offset(), 6);
  auto after = c.dequantized().first.to_float_vector();
  ASSERT_EQ(after.size(), before.size() / 6 * 4);
  // [1, 2, L, 64]: head 0 rows 0..3 unchanged
  for (size_t i = 0; i < 4 * 64; ++i) EXPECT_EQ(after[i], before[i]);
  // 8-bit affine error bound: half a step of each group's range
  auto orig = k.to_float_vector();
  for (size_t i = 0; i < 64; ++i) EXPECT_NEAR(before[i], orig[i], 0.05);
}

TEST(ChunkedKVCache, KeepsTheLastChunkAndReportsItsStart) {
  generate::ChunkedKVCache c(4);
  Tensor k = Tensor::full({1, 1, 3, 2}, 1.0);
  c.update_and_fetch(k, k);
  c.update_and_fetch(k, k);  // 6 held
  EXPECT_EQ(c.first_position(), 0);
  auto [keys, values] = c.update_and_fetch(k, k);  // front trimmed to 4 first, then 3 more
  EXPECT_EQ(c.first_position(), 2);
  EXPECT_EQ(keys.dim(2), 7);
  EXPECT_EQ(c.offset(), 9);
  EXPECT_EQ(c.meta_state(), (std::vector<std::string>{"4", "2"}));
}

// stories260K: max_kv_size large enough never to evict reproduces llama2.c's greedy ids.
TEST(CacheGeneration, RotatingCacheAboveLengthEqualsSimpleOnStories260K) {
  LMX_REQUIRE_STORIES();
  auto c = testing::stories260k();
  GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 60;
  auto run = [&](const GenerateParameters& params) {
    generate::Generation g(c->model(), c->tokenizer(), {1, 403, 407}, params, {});
    while (g.next()) {
    }
    return g.tokens();
  };
  const auto plain = run(p);
  p.max_kv_size = 64;  // 3 + 60 positions fit
  EXPECT_EQ(run(p), plain);
  p.max_kv_size = 24;  // evicts: must differ somewhere but still run
  const auto small = run(p);
  EXPECT_EQ(small.size(), plain.size());
  EXPECT_TRUE(std::equal(small.begin(), small.begin() + 20, plain.begin()));
}

class MoeFamilies : public ::testing::TestWithParam<std::string> {};

// Issue 19's attention / MoE families: token by token and in chunks, cached decoding
// reproduces transformers' full-sequence logits (gpt_oss: rotating caches on its
// windowed layers; llama4_text: chunked attention across the cache; deepseek: the
// cache holds the compressed latent and the shared rotary key).
TEST_P(MoeFamilies, CachedDecodeEqualsFullForward) {
  auto loaded = models::load_model(testing::fixture(GetParam()));
  const auto ref = testing::fixture_reference(GetParam());
  expect_chunked_logits_match(*loaded.model, ref, {}, {1}, 1e-4, "token by token");
  expect_chunked_logits_match(*loaded.model, ref, {}, {5, 1, 3}, 1e-4, "mixed chunks");
}

INSTANTIATE_TEST_SUITE_P(Fixtures, MoeFamilies,
                         ::testing::Values("qwen2_moe", "olmoe", "phimoe", "deepseek_v2", "deepseek_v3",
                                           "glm4_moe", "ernie4_5_moe", "gpt_oss", "dbrx", "llama4_text"));

// The deepseek_v3 fixture's shape with ranks that 4-bit groups of 32 divide (its latent rank
// of 16 does not), random weights, quantized: decoding takes the latent form from the
// quantized kv_b_proj (ops::quantized_bmm for the queries, each head's value rows as a
// quantized linear) and runs the shared expert inside the routed experts' batched calls.
// Token by token it reproduces the model's own full-sequence forward (the expanded form,
// every expert one by one), with exact (f32) and int16 activations.
TEST(MoeFamilies, QuantizedLatentDecodeEqualsFullForward) {
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(testing::fixture("deepseek_v3") / "config.json"));
  cfg["q_lora_rank"] = 32;
  cfg["kv_lora_rank"] = 64;
  auto model = models::create_model(models::ConfigReader(cfg, "config.json"));
  models::RandomInitOptions ro;
  ro.dtype = Dtype::f32;
  ro.seed = 11;
  ro.quantization = models::QuantizeOptions{4, 32, Dtype::bf16};
  models::randomize_model(*model, ro);
  bool kv_b_quantized = false;
  for (const auto& p : model->parameters()) kv_b_quantized |= p.name == "model.layers.1.self_attn.kv_b_proj.scales";
  ASSERT_TRUE(kv_b_quantized);
  std::mt19937 rng(3);
  std::vector<int64_t> ids(14);
  for (int64_t& id : ids) id = static_cast<int64_t>(rng() % 256);
  const Tensor all = Tensor::from_vector(ids, {1, 14});
  const ops::QuantActivations saved = ops::quant_activations();
  for (auto [precision, tol] : {std::pair{ops::QuantActivations::f32, 1e-5}, {ops::QuantActivations::int16, 1e-3}}) {
    ops::set_quant_activations(precision);
    const Tensor full = model->forward(all, nullptr);
    nn::KVCacheList cache = generate::make_cache(*model, {});
    for (int64_t i = 0; i < 14; ++i) {
      const auto got = model->forward(all.slice(1, i, i + 1).contiguous(), &cache).to_float_vector();
      const auto want = full.select(1, i).to_float_vector();
      double err = 0.0, scale = 0.0;
      for (size_t j = 0; j < want.size(); ++j) {
        err = std::max(err, static_cast<double>(std::fabs(got[j] - want[j])));
        scale = std::max(scale, static_cast<double>(std::fabs(want[j])));
      }
      ASSERT_GT(scale, 0.0);
      EXPECT_LE(err / scale, tol) << "position " << i << " activations " << static_cast<int>(precision);
    }
  }
  ops::set_quant_activations(saved);
}

// DeepSeek's multi-head latent attention caches kv_lora_rank + qk_rope_head_dim floats
// per token and layer (16 + 8 in the fixture), not heads * (k + v) head dims.
TEST(MoeFamilies, LatentAttentionCachesTheCompressedLatent) {
  auto loaded = models::load_model(testing::fixture("deepseek_v3"));
  const auto ref = testing::fixture_reference("deepseek_v3");
  nn::KVCacheList cache = generate::make_cache(*loaded.model, {});
  loaded.model->forward(row_ids(ref.ids, 0, 0, 5), &cache);
  const std::vector<Tensor> state = cache[0]->state();
  ASSERT_EQ(state.size(), 2u);
  EXPECT_EQ(state[0].shape(), (Shape{1, 1, 5, 16}));
  EXPECT_EQ(state[1].shape(), (Shape{1, 1, 5, 8}));
}

}  // namespace
}  // namespace lmx
