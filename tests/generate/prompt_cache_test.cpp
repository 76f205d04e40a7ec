// Prompt-cache files: a saved and reloaded cache continues exactly as the original;
// files laid out by mlx-lm's / mlx-swift-lm's rules (built here tensor by tensor from
// the documented layout) are read; user metadata is checked.
#include "lmx/generate/prompt_cache.h"

#include <gtest/gtest.h>

#include <cmath>

#include "lmx/base/error.h"
#include "lmx/generate/generate.h"
#include "lmx/generate/quantized_kv_cache.h"
#include "lmx/generate/rotating_kv_cache.h"
#include "lmx/generate/simple_kv_cache.h"
#include "lmx/generate/token_iterator.h"
#include "lmx/io/safetensors_writer.h"
#include "test_models.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;
using generate::GenerateParameters;

fs::path temp_file(const std::string& name) {
  return fs::temp_directory_path() /
         ("lmx-pc-" + std::to_string(::getpid()) + "-" + name + ".safetensors");
}

Tensor ids_of(const std::vector<int32_t>& v) {
  return Tensor::from_vector(v, {1, static_cast<int64_t>(v.size())});
}

// Greedy continuation of `cache` for n tokens starting from `token`.
std::vector<int32_t> continue_greedy(models::LanguageModel& model,
                                     nn::KVCacheList& cache,
                                     int32_t token,
                                     int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    auto row = model.forward(ids_of({token}), &cache).to_float_vector();
    token = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
    out.push_back(token);
  }
  return out;
}

const std::vector<int32_t> kPrompt = {1,   403, 407, 261, 378, 300, 280,
                                      270, 290, 301, 350, 260, 269, 330};

class PromptCacheFiles : public ::testing::Test {
 protected:
  void SetUp() override { LMX_REQUIRE_STORIES(); }
};

TEST_F(PromptCacheFiles, RoundTripContinuesIdenticallyForEachCacheKind) {
  auto& model = testing::stories260k()->model();
  // Quantized caches need head_dim >= 32 (stories260K has 8): see the qwen3 test below.
  std::vector<GenerateParameters> kinds(2);
  kinds[1].max_kv_size = 8;  // wrapped ring (13 prefilled tokens > 8)
  for (const auto& p : kinds) {
    nn::KVCacheList cache = generate::make_cache(model, p);
    model.forward(ids_of(std::vector<int32_t>(kPrompt.begin(), kPrompt.end() - 1)), &cache);
    const fs::path f = temp_file("rt");
    generate::save_prompt_cache(f, cache, {{"model", "stories260K"}, {"tokenizer_config", "{}"}});
    auto loaded = generate::load_prompt_cache(f, {{"model", "stories260K"}});
    fs::remove(f);
    EXPECT_EQ(loaded.metadata.at("tokenizer_config"), "{}");
    ASSERT_EQ(loaded.cache.size(), cache.size());
    EXPECT_EQ(loaded.cache[0]->class_name(), cache[0]->class_name());
    EXPECT_EQ(loaded.cache[0]->offset(), static_cast<int64_t>(kPrompt.size() - 1));
    EXPECT_EQ(continue_greedy(model, loaded.cache, kPrompt.back(), 30),
              continue_greedy(model, cache, kPrompt.back(), 30));
  }
}

// What `lmx cache-prompt` + `--prompt-cache-file` do: prefill a prefix, save, load, then
// generate from the suffix alone: the tokens equal generating from the whole prompt.
TEST_F(PromptCacheFiles, CachedPrefixPlusSuffixEqualsTheWholePrompt) {
  auto c = testing::stories260k();
  GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 25;
  p.prefill_step_size = 4;  // several balanced chunks
  const std::vector<int32_t> prefix(kPrompt.begin(), kPrompt.begin() + 10),
      suffix(kPrompt.begin() + 10, kPrompt.end());
  int64_t progress = 0;
  nn::KVCacheList cache =
      generate::prefill_cache(c->model(), prefix, p, [&](int64_t done, int64_t total) {
        EXPECT_EQ(total, 10);
        progress = done;
      });
  EXPECT_EQ(progress, 10);
  const fs::path f = temp_file("prefix");
  generate::save_prompt_cache(f, cache, {{"model", "stories260K"}});
  auto loaded = generate::load_prompt_cache(f, {{"model", "stories260K"}});
  fs::remove(f);
  generate::Generation from_cache(c->model(), c->tokenizer(), suffix, p, {}, &loaded.cache);
  generate::GenerationInfo info;
  while (auto e = from_cache.next())
    if (e->kind == generate::GenerationEvent::Kind::info) info = e->info;
  generate::Generation whole(c->model(), c->tokenizer(), kPrompt, p, {});
  while (whole.next()) {
  }
  EXPECT_EQ(from_cache.tokens(), whole.tokens());
  EXPECT_EQ(info.cached_prompt_tokens, 10);
  EXPECT_EQ(info.prompt_tokens, 4);
}

TEST_F(PromptCacheFiles, MetadataMismatchIsAClearError) {
  auto& model = testing::stories260k()->model();
  nn::KVCacheList cache = generate::make_cache(model, {});
  model.forward(ids_of({1, 403}), &cache);
  const fs::path f = temp_file("meta");
  generate::save_prompt_cache(f, cache, {{"model", "stories260K"}});
  try {
    generate::load_prompt_cache(f, {{"model", "other/model"}});
    ADD_FAILURE() << "mismatch accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("stories260K"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("other/model"), std::string::npos) << e.what();
  }
  EXPECT_THROW(generate::load_prompt_cache(f, {{"tokenizer_config", "x"}}), InvalidArgument);
  fs::remove(f);
}

// Writes a file the way mlx-lm (Python) or mlx-swift-lm lay it out, from a cache's
// arrays, with the variant's class names and meta-state strings.
struct LayoutCache {
  std::string cls;
  std::vector<std::pair<std::string, Tensor>> tensors;  // suffix after "i." -> array
  std::vector<std::string> meta;                        // "0.i.j" values (one: "0.i")
};

void write_layout(const fs::path& f,
                  const std::vector<LayoutCache>& caches,
                  const std::map<std::string, std::string>& user) {
  io::SafetensorsWriter w;
  std::vector<Tensor> alive;
  for (size_t i = 0; i < caches.size(); ++i) {
    for (const auto& [suffix, t] : caches[i].tensors) {
      Tensor c = t.contiguous();
      alive.push_back(c);
      w.add(std::to_string(i) + "." + suffix, c.dtype(), c.shape(), c.raw_data(), c.nbytes());
    }
    if (caches[i].meta.size() == 1) {
      w.set_metadata("0." + std::to_string(i), caches[i].meta[0]);
    } else {
      for (size_t j = 0; j < caches[i].meta.size(); ++j)
        w.set_metadata("0." + std::to_string(i) + "." + std::to_string(j), caches[i].meta[j]);
    }
    w.set_metadata("2." + std::to_string(i), caches[i].cls);
  }
  for (const auto& [k, v] : user) w.set_metadata("1." + k, v);
  w.write(f);
}

TEST_F(PromptCacheFiles, ReadsFilesInTheMlxLmAndSwiftLayouts) {
  auto& model = testing::stories260k()->model();
  const std::vector<int32_t> prefix(kPrompt.begin(), kPrompt.end() - 1);
  const int64_t n = static_cast<int64_t>(prefix.size());  // 13
  // Reference continuations from live caches.
  nn::KVCacheList simple = generate::make_cache(model, {});
  model.forward(ids_of(prefix), &simple);
  GenerateParameters rp;
  rp.max_kv_size = 8;
  nn::KVCacheList rotating = generate::make_cache(model, rp);
  model.forward(ids_of(prefix), &rotating);
  auto* r0 = dynamic_cast<generate::RotatingKVCache*>(rotating[0].get());
  ASSERT_NE(r0, nullptr);
  nn::KVCacheList simple_copy = generate::copy_cache(simple),
                  rotating_copy = generate::copy_cache(rotating);
  const auto want_simple = continue_greedy(model, simple_copy, kPrompt.back(), 20);
  const auto want_rotating = continue_greedy(model, rotating_copy, kPrompt.back(), 20);

  for (const bool swift : {false, true}) {
    std::vector<LayoutCache> s, r;
    for (size_t i = 0; i < simple.size(); ++i) {
      auto st = simple[i]->state();
      // f32 arrays keep the continuation exact (mlx would store the model's dtype).
      s.push_back({swift ? "KVCacheSimple" : "KVCache", {{"0", st[0]}, {"1", st[1]}}, {""}});
      auto* rc = dynamic_cast<generate::RotatingKVCache*>(rotating[i].get());
      auto rs = rc->state();
      const std::string keep = std::to_string(rc->keep()), max = std::to_string(rc->max_size()),
                        off = std::to_string(rc->offset()), idx = std::to_string(rc->ring_index());
      r.push_back({"RotatingKVCache",
                   {{"0", rs[0]}, {"1", rs[1]}},
                   swift ? std::vector<std::string>{keep, max, "256", off, idx}
                         : std::vector<std::string>{keep, max, off, idx}});
    }
    const fs::path fs_ = temp_file(swift ? "swift-simple" : "py-simple");
    const fs::path fr = temp_file(swift ? "swift-rot" : "py-rot");
    write_layout(fs_, s, {{"model", "m"}});
    write_layout(fr, r, {});
    auto ls = generate::load_prompt_cache(fs_, {{"model", "m"}});
    auto lr = generate::load_prompt_cache(fr);
    fs::remove(fs_);
    fs::remove(fr);
    EXPECT_EQ(ls.cache[0]->offset(), n);
    EXPECT_EQ(lr.cache[0]->offset(), n);
    EXPECT_EQ(continue_greedy(model, ls.cache, kPrompt.back(), 20), want_simple)
        << (swift ? "swift" : "python");
    EXPECT_EQ(continue_greedy(model, lr.cache, kPrompt.back(), 20), want_rotating)
        << (swift ? "swift" : "python");
  }
}

// Quantized caches on a fixture with head_dim 32: the Python layout nests the arrays
// ("i.0.0" key weights ... "i.1.2" value biases, meta offset / group / bits), Swift's is
// flat ("i.0" ... "i.5", meta step / offset / group / bits).
// Separate key / value bits survive the file (bits follow from the array shapes).
TEST(PromptCacheQuantized, MixedKeyValueBitsRoundTrip) {
  std::vector<float> data(1 * 2 * 5 * 64);
  for (size_t i = 0; i < data.size(); ++i) data[i] = std::sin(0.37f * static_cast<float>(i));
  Tensor k = Tensor::from_vector(data, {1, 2, 5, 64});
  nn::KVCacheList cache;
  cache.push_back(std::make_unique<generate::QuantizedKVCache>(64, 8, 3));
  cache[0]->update_and_fetch_quantized(k, k);
  const fs::path f = temp_file("q-mixed");
  generate::save_prompt_cache(f, cache);
  auto loaded = generate::load_prompt_cache(f);
  fs::remove(f);
  auto* q = dynamic_cast<generate::QuantizedKVCache*>(loaded.cache[0].get());
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->bits(), 8);
  EXPECT_EQ(q->v_bits(), 3);
  auto* orig = dynamic_cast<generate::QuantizedKVCache*>(cache[0].get());
  EXPECT_EQ(q->dequantized().first.to_float_vector(), orig->dequantized().first.to_float_vector());
  EXPECT_EQ(q->dequantized().second.to_float_vector(),
            orig->dequantized().second.to_float_vector());
}

TEST(PromptCacheQuantized, ReadsBothLayoutsAndRoundTrips) {
  auto loaded = models::load_model(testing::fixture("qwen3"));
  auto& model = *loaded.model;
  const auto ref = testing::fixture_reference("qwen3");
  Tensor prefix = ref.ids.slice(0, 0, 1).slice(1, 0, 8).contiguous();
  nn::KVCacheList live;
  for (int i = 0; i < 2; ++i) live.push_back(std::make_unique<generate::QuantizedKVCache>(32, 4));
  model.forward(prefix, &live);
  auto next = [&](nn::KVCacheList& c) {
    return model.forward(ref.ids.slice(0, 0, 1).slice(1, 8, 12).contiguous(), &c).to_float_vector();
  };
  nn::KVCacheList live_copy = generate::copy_cache(live);
  const auto want = next(live_copy);

  const fs::path f = temp_file("q-rt");
  generate::save_prompt_cache(f, live, {{"model", "qwen3"}});
  auto rt = generate::load_prompt_cache(f);
  fs::remove(f);
  ASSERT_TRUE(rt.cache[0]->is_quantized());
  EXPECT_EQ(next(rt.cache), want);

  for (const bool swift : {false, true}) {
    std::vector<LayoutCache> caches;
    for (auto& c : live) {
      auto st = c->state();
      LayoutCache lc{"QuantizedKVCache", {}, {}};
      for (size_t j = 0; j < 6; ++j) {
        lc.tensors.push_back(
            {swift ? std::to_string(j) : std::to_string(j / 3) + "." + std::to_string(j % 3),
             j % 3 == 0 ? st[j] : st[j].to(Dtype::bf16).to(Dtype::f32)});
      }
      lc.meta = swift ? std::vector<std::string>{"256", "8", "32", "4"}
                      : std::vector<std::string>{"8", "32", "4"};
      caches.push_back(lc);
    }
    const fs::path fq = temp_file(swift ? "q-swift" : "q-py");
    write_layout(fq, caches, {});
    auto lq = generate::load_prompt_cache(fq);
    fs::remove(fq);
    ASSERT_EQ(lq.cache.size(), 2u);
    auto* q = dynamic_cast<generate::QuantizedKVCache*>(lq.cache[0].get());
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->bits(), 4);
    EXPECT_EQ(q->group_size(), 32);
    EXPECT_EQ(q->offset(), 8);
    // Scales / biases went through bf16: within bf16 rounding of the live continuation.
    EXPECT_LE(testing::relative_error(next(lq.cache), want), 2e-2) << (swift ? "swift" : "python");
  }
  // Meta that disagrees with the arrays is refused.
  std::vector<LayoutCache> bad;
  auto st = live[0]->state();
  bad.push_back({"QuantizedKVCache", {}, {"9", "32", "4"}});
  for (size_t j = 0; j < 6; ++j) bad[0].tensors.push_back({std::to_string(j), st[j]});
  const fs::path fb = temp_file("q-bad");
  write_layout(fb, bad, {});
  EXPECT_THROW(generate::load_prompt_cache(fb), FormatError);
  fs::remove(fb);
}

}  // namespace
}  // namespace lmx
