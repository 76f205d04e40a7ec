// Batch-1 decode on CUDA: the one-query attention kernel (decode_attention.cu) against
// the CPU's attention on odd shapes (and batches with an additive mask), the same ops with the position read on the device
// (lmx/core/step_values.h) against the host-position run, and decode steps replayed from
// CUDA graphs (lmx/generate/decode_graph.h) against eager steps, logits bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "lmx/core/ops/step_ops.h"
#include "lmx/core/ops/nn.h"
#include "lmx/core/step_values.h"
#include "lmx/generate/decode_graph.h"
#include "lmx/generate/simple_kv_cache.h"
#include "lmx/models/load.h"
#include "lmx/models/quantize.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;
using testing::expect_identical;
using testing::expect_matches;
using testing::on_cuda;
using testing::random_tensor;

// The session-12 decode paths (lmx/base/env_switch.h) on for these tests whatever the
// environment says.
class CudaDecode : public testing::CudaSwitchedTest {
 protected:
  CudaDecode() : CudaSwitchedTest({"LMX_CUDA_GRAPHS", "LMX_CUDA_DECODE_ATTENTION", "LMX_FUSED_DECODE"}) {}
};

struct Case {
  int64_t batch, hq, hkv, len, capacity, d, dv;
  bool causal;
  int64_t window;
  float softcap;
  bool sinks;
  int mask = 0;  // 0 none; 1 [B, 1, 1, len] (a left-padded batch); 2 [B, Hq, 1, len] random
};

// An additive mask over `len` keys: kind 1 hides the first 3 + 7 b keys of row b (a
// left-padded batch) and adds random values to the rest; kind 2 gives every head its own.
Tensor decode_mask(const Case& c, uint32_t seed) {
  const int64_t heads = c.mask == 2 ? c.hq : 1;
  Tensor m = random_tensor({c.batch, heads, 1, c.len}, seed);
  float* p = m.data<float>();
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t j = 0; j < std::min<int64_t>(3 + 7 * b, c.len - 1); ++j)
        p[(b * heads + h) * c.len + j] = -INFINITY;
  return m;
}

TEST_F(CudaDecode, OneQueryAttentionMatchesCpu) {
  const Case cases[] = {
      {1, 32, 8, 640, 768, 64, 64, true, 0, 0.0f, false},    // the Llama-3.2-1B shape
      {1, 14, 2, 77, 77, 64, 64, true, 0, 0.0f, false},      // Qwen2.5-0.5B's groups of 7
      {2, 12, 4, 131, 160, 72, 40, true, 50, 0.0f, true},    // window, sinks, odd dims, batch 2
      {1, 6, 6, 33, 40, 256, 256, true, 0, 30.0f, false},    // soft-cap, head_dim 256
      {1, 16, 1, 1, 8, 8, 8, false, 0, 0.0f, false},         // one key, groups of 16
      {1, 5, 5, 2049, 2100, 128, 128, true, 0, 0.0f, true},  // many splits
      {32, 32, 8, 96, 128, 64, 64, true, 0, 0.0f, false, 1},  // a left-padded batch of 32 rows
      {3, 14, 2, 77, 80, 64, 64, true, 0, 20.0f, true, 2},  // a mask per head, soft-cap, sinks
      {8, 16, 4, 1500, 1600, 64, 64, true, 700, 0.0f, false, 1},  // 2 tiles a split, 24 splits
      {16, 8, 8, 1100, 1100, 128, 96, true, 300, 0.0f, true, 1},  // 8 tiles a split; splits before the window
      {2, 4, 2, 45, 50, 20, 12, true, 0, 0.0f, false},  // dims not a multiple of 8: element loads
  };
  uint32_t seed = 700;
  for (const Case& c : cases) {
    SCOPED_TRACE("hq " + std::to_string(c.hq) + " hkv " + std::to_string(c.hkv) + " len " + std::to_string(c.len));
    Tensor q = random_tensor({c.batch, c.hq, 1, c.d}, seed++);
    // K / V as views of the first len positions of a cache buffer, as the KV cache hands them out.
    Tensor kb = random_tensor({c.batch, c.hkv, c.capacity, c.d}, seed++);
    Tensor vb = random_tensor({c.batch, c.hkv, c.capacity, c.dv}, seed++);
    ops::AttentionParams p;
    p.scale = 0.125f;
    p.causal = c.causal;
    p.q_offset = c.len - 1;
    p.window = c.window;
    p.softcap = c.softcap;
    if (c.sinks) p.sinks = random_tensor({c.hq}, seed++);
    if (c.mask) p.mask = decode_mask(c, seed++);
    Tensor want = ops::scaled_dot_product_attention(q, kb.slice(2, 0, c.len), vb.slice(2, 0, c.len), p);
    Tensor kc = on_cuda(kb), vc = on_cuda(vb);
    ops::AttentionParams pc = p;
    if (c.sinks) pc.sinks = on_cuda(p.sinks);
    if (c.mask) pc.mask = on_cuda(p.mask);
    Tensor got = ops::scaled_dot_product_attention(on_cuda(q), kc.slice(2, 0, c.len), vc.slice(2, 0, c.len), pc);
    expect_matches(got, want, 1e-5, 2e-6);
    {
      SCOPED_TRACE("bf16 K / V");  // a bf16 KV cache: the CPU on the same rounded values
      Tensor kb16 = kb.to(Dtype::bf16), vb16 = vb.to(Dtype::bf16);
      Tensor want16 = ops::scaled_dot_product_attention(q, kb16.to(Dtype::f32).slice(2, 0, c.len),
                                                        vb16.to(Dtype::f32).slice(2, 0, c.len), p);
      Tensor got16 = ops::scaled_dot_product_attention(on_cuda(q), on_cuda(kb16).slice(2, 0, c.len),
                                                       on_cuda(vb16).slice(2, 0, c.len), pc);
      expect_matches(got16, want16, 1e-5, 2e-6);
    }
    if (c.batch != 1) continue;
    // The same with the position on the device and the grid over the whole buffer: bit for bit.
    Tensor pos = on_cuda(Tensor::from_vector(std::vector<int64_t>{c.len - 1}, {1}));
    const StepValues step{Device::cuda(), pos.data<int64_t>(), c.len - 1, c.capacity};
    Tensor stepped;
    {
      StepScope scope(step);
      stepped = ops::scaled_dot_product_attention(on_cuda(q), kc.slice(2, 0, c.len), vc.slice(2, 0, c.len), pc);
    }
    expect_identical(stepped, got.to(Device::cpu()));
  }
}

TEST_F(CudaDecode, WriteAtStepPositionWritesThere) {
  Tensor buf = on_cuda(random_tensor({1, 3, 20, 9}, 801));
  Tensor before = buf.to(Device::cpu());
  Tensor src = random_tensor({1, 9, 3, 1}, 802).transpose(1, 3).transpose(1, 2);  // [1, 3, 1, 9], strided
  Tensor pos = on_cuda(Tensor::from_vector(std::vector<int64_t>{13}, {1}));
  const StepValues step{Device::cuda(), pos.data<int64_t>(), 13, 20};
  {
    StepScope scope(step);
    ops::write_at_step_position(buf, on_cuda(src));
  }
  Tensor want = before.clone();
  want.slice(2, 13, 14).copy_(src);
  expect_identical(buf, want);
  EXPECT_THROW(ops::write_at_step_position(buf, on_cuda(src)), InvalidArgument);  // outside a step

  // A bf16 cache: the row rounded as the host rounds f32 to bf16.
  Tensor buf16 = on_cuda(random_tensor({1, 3, 20, 9}, 803).to(Dtype::bf16));
  Tensor want16 = buf16.to(Device::cpu());
  {
    StepScope scope(step);
    ops::write_at_step_position(buf16, on_cuda(src));
  }
  want16.slice(2, 13, 14).copy_(src);
  EXPECT_EQ(buf16.dtype(), Dtype::bf16);
  expect_identical(buf16, want16);
}

fs::path fixture(const std::string& name) {
  const char* env = std::getenv("LMX_TEST_MODELS");
  return (env ? fs::path(env) : fs::path(LMX_SOURCE_DIR) / "tests/data/models") / name;
}

nn::KVCacheList small_step_caches(int64_t layers) {
  nn::KVCacheList c;
  for (int64_t i = 0; i < layers; ++i) c.push_back(std::make_unique<generate::SimpleKVCache>(16));
  return c;
}

// 40 greedy steps from a 10-token prompt over caches that grow every 16 positions: the
// graph path recaptures at each capacity bucket and its logits equal the eager steps'; a
// second graph in greedy mode (the argmax on the device, one id back) picks the host's
// argmax of the eager logits at every step.
void expect_graph_steps_equal_eager_steps(models::LanguageModel& model) {
  std::vector<int32_t> prompt;
  for (int i = 0; i < 10; ++i) prompt.push_back(static_cast<int32_t>((i * 37 + 5) % model.vocab_size()));
  nn::KVCacheList eager = small_step_caches(model.num_layers()), graphed = small_step_caches(model.num_layers());
  nn::KVCacheList greedy = small_step_caches(model.num_layers());
  const Tensor ids = Tensor::from_vector(std::vector<int32_t>(prompt.begin(), prompt.end() - 1), {1, 9});
  model.forward(ids, &eager, {nullptr, true});
  model.forward(ids, &graphed, {nullptr, true});
  model.forward(ids, &greedy, {nullptr, true});
  generate::DecodeGraph graph, greedy_graph;
  int32_t token = prompt.back();
  std::vector<float> row, unused;
  int64_t from_graph = 0, from_greedy_graph = 0;
  for (int step = 0; step < 40; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    Tensor e = model.forward(Tensor::from_vector(std::vector<int32_t>{token}, {1, 1}), &eager, {nullptr, true});
    const std::vector<float> want = e.to_float_vector();
    if (graph.step(model, graphed, token, row)) {
      ++from_graph;
      ASSERT_EQ(row.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(row[i], want[i]) << "logit " << i;
    } else {
      Tensor g = model.forward(Tensor::from_vector(std::vector<int32_t>{token}, {1, 1}), &graphed, {nullptr, true});
      ASSERT_EQ(g.to_float_vector(), want);
    }
    ASSERT_EQ(graphed[0]->offset(), eager[0]->offset());
    size_t best = 0;
    for (size_t i = 1; i < want.size(); ++i)
      if (want[i] > want[best]) best = i;
    int32_t chosen = -1;
    if (greedy_graph.step(model, greedy, token, unused, &chosen)) {
      ++from_greedy_graph;
      ASSERT_EQ(chosen, static_cast<int32_t>(best));
      ASSERT_TRUE(unused.empty());  // only the id came back
    } else {
      model.forward(Tensor::from_vector(std::vector<int32_t>{token}, {1, 1}), &greedy, {nullptr, true});
    }
    ASSERT_EQ(greedy[0]->offset(), eager[0]->offset());
    token = static_cast<int32_t>(best);
  }
  EXPECT_FALSE(graph.disabled());
  EXPECT_GE(graph.captures(), 3);  // positions 10..49 span the buckets of 16, 32 and 48
  EXPECT_GE(from_graph, 35);
  EXPECT_EQ(graph.replays(), from_graph);
  EXPECT_FALSE(greedy_graph.disabled());
  EXPECT_GE(from_greedy_graph, 35);
}

void move_to_cuda(models::LanguageModel& model) {
  for (auto& p : model.parameters()) {
    if (p.tensor->defined()) *p.tensor = p.tensor->to(Device::cuda());
  }
}

TEST_F(CudaDecode, GraphStepsEqualEagerStepsAcrossCapacityBuckets) {
  const fs::path dir = fixture("llama");
  if (!fs::exists(dir / "config.json")) GTEST_SKIP() << "no fixture at " << dir;
  auto loaded = models::load_model(dir);
  move_to_cuda(*loaded.model);
  expect_graph_steps_equal_eager_steps(*loaded.model);
}

// A 4-bit model with a tied, quantized embedding table: the token's row is dequantized on
// the device inside the graph (QuantizedWeight::dequantize_rows under a StepScope).
TEST_F(CudaDecode, QuantizedGraphStepsEqualEagerSteps) {
  const fs::path dir = fixture("llama_tied");
  if (!fs::exists(dir / "config.json")) GTEST_SKIP() << "no fixture at " << dir;
  auto loaded = models::load_model(dir);
  move_to_cuda(*loaded.model);
  models::QuantizeOptions q;
  q.bits = 4;
  q.group_size = 32;
  models::quantize_model(*loaded.model, q);
  expect_graph_steps_equal_eager_steps(*loaded.model);
}

// A model whose step waits for the host (MoE routing) cannot be captured: the graph
// switches itself off and the caches are left as they were.
TEST_F(CudaDecode, UncapturableStepFallsBackUntouched) {
  const fs::path dir = fixture("mixtral");
  if (!fs::exists(dir / "config.json")) GTEST_SKIP() << "no fixture at " << dir;
  auto loaded = models::load_model(dir);
  models::LanguageModel& model = *loaded.model;
  for (auto& p : model.parameters()) {
    if (p.tensor->defined()) *p.tensor = p.tensor->to(Device::cuda());
  }
  nn::KVCacheList cache = small_step_caches(model.num_layers());
  model.forward(Tensor::from_vector(std::vector<int32_t>{1, 2, 3}, {1, 3}), &cache, {nullptr, true});
  generate::DecodeGraph graph;
  std::vector<float> row;
  EXPECT_FALSE(graph.step(model, cache, 4, row));
  EXPECT_TRUE(graph.disabled());
  EXPECT_EQ(cache[0]->offset(), 3);
  Tensor logits = model.forward(Tensor::from_vector(std::vector<int32_t>{4}, {1, 1}), &cache, {nullptr, true});
  EXPECT_EQ(cache[0]->offset(), 4);
  EXPECT_EQ(logits.dim(2), model.vocab_size());
}

TEST_F(CudaDecode, RopeAppendMatchesRopeAndCopy) {
  // q [1, 12, 1, 72] and k / v [1, 4, 1, 72 / 40] as strided views of one projection row.
  const int64_t hq = 12, hkv = 4, d = 72, dv = 40, cap = 37, pos = 29, rd = 48;
  Tensor qkv = random_tensor({1, 1, hq * d + hkv * d + hkv * dv}, 901);
  Tensor q = qkv.slice(2, 0, hq * d).reshape({1, 1, hq, d}).transpose(1, 2);
  Tensor k = qkv.slice(2, hq * d, hq * d + hkv * d).reshape({1, 1, hkv, d}).transpose(1, 2);
  Tensor v = qkv.slice(2, hq * d + hkv * d, hq * d + hkv * d + hkv * dv).reshape({1, 1, hkv, dv}).transpose(1, 2);
  std::vector<float> freqs;
  for (int i = 0; i < rd / 2; ++i) freqs.push_back(std::pow(10000.0f, -2.0f * static_cast<float>(i) / rd));
  for (bool traditional : {false, true}) {
    SCOPED_TRACE(traditional ? "traditional" : "halves");
    ops::RopeParams p;
    p.inv_freq = Tensor::from_vector(freqs, {rd / 2});
    p.rotary_dim = rd;
    p.traditional = traditional;
    p.offset = pos;
    p.mscale = 1.25f;
    Tensor kbuf = random_tensor({1, hkv, cap, d}, 902), vbuf = random_tensor({1, hkv, cap, dv}, 903);
    Tensor want_k = kbuf.clone(), want_v = vbuf.clone();
    want_k.slice(2, pos, pos + 1).copy_(ops::rope(k, p));
    want_v.slice(2, pos, pos + 1).copy_(v);
    Tensor want_q = ops::rope(q, p);
    ops::RopeParams pc = p;
    pc.inv_freq = on_cuda(p.inv_freq);
    Tensor kc = on_cuda(kbuf), vc = on_cuda(vbuf), qkvc = on_cuda(qkv);
    Tensor qc = qkvc.slice(2, 0, hq * d).reshape({1, 1, hq, d}).transpose(1, 2);
    Tensor kk = qkvc.slice(2, hq * d, hq * d + hkv * d).reshape({1, 1, hkv, d}).transpose(1, 2);
    Tensor vv = qkvc.slice(2, hq * d + hkv * d, hq * d + hkv * d + hkv * dv).reshape({1, 1, hkv, dv}).transpose(1, 2);
    Tensor got_q = ops::rope_append(qc, kk, vv, pc, kc, vc);
    // The CUDA rope kernel's arithmetic: against CUDA's own rope bit for bit, the CPU's within rounding.
    expect_identical(got_q, ops::rope(qc, pc).to(Device::cpu()));
    expect_matches(got_q, want_q, 1e-5, 1e-6);
    expect_matches(kc, want_k, 1e-5, 1e-6);
    expect_identical(vc, want_v);

    // bf16 buffers (a bf16 KV cache): k rotated as in f32, then rounded as the host rounds.
    Tensor kc16 = on_cuda(kbuf.to(Dtype::bf16)), vc16 = on_cuda(vbuf.to(Dtype::bf16));
    Tensor want_k16 = kbuf.to(Dtype::bf16), want_v16 = vbuf.to(Dtype::bf16);
    want_k16.slice(2, pos, pos + 1).copy_(ops::rope(kk, pc).to(Device::cpu()));
    want_v16.slice(2, pos, pos + 1).copy_(v);
    expect_identical(ops::rope_append(qc, kk, vv, pc, kc16, vc16), got_q.to(Device::cpu()));
    expect_identical(kc16, want_k16);
    expect_identical(vc16, want_v16);
    EXPECT_THROW(ops::rope_append(qc, kk, vv, pc, kc16, vc), ShapeError);  // mixed buffer dtypes
  }
}

// 12 decode steps of the same tokens on the CPU and on CUDA (graph replays where they
// apply): the worst relative error of the logits (testing::relative_error).
double worst_step_error(models::LanguageModel& cpu, nn::KVCacheList& cc, models::LanguageModel& gpu,
                        nn::KVCacheList& gc, generate::DecodeGraph& graph) {
  std::vector<float> row;
  int32_t token = 7;
  double worst = 0.0;
  for (int step = 0; step < 12; ++step) {
    Tensor want = cpu.forward(Tensor::from_vector(std::vector<int32_t>{token}, {1, 1}), &cc, {nullptr, true});
    if (!graph.step(gpu, gc, token, row)) {
      Tensor g = gpu.forward(Tensor::from_vector(std::vector<int32_t>{token}, {1, 1}), &gc, {nullptr, true});
      row = g.to_float_vector();
    }
    worst = std::max(worst, testing::relative_error(Tensor::from_vector(row, want.shape()), want));
    token = static_cast<int32_t>((token * 31 + 11) % gpu.vocab_size());
  }
  return worst;
}

// Decode steps on CUDA (fused rope + append, decode attention; graphs where they apply)
// give the CPU's logits.
TEST_F(CudaDecode, DecodeStepsMatchCpu) {
  const fs::path dir = fixture("llama");
  if (!fs::exists(dir / "config.json")) GTEST_SKIP() << "no fixture at " << dir;
  auto cpu = models::load_model(dir), gpu = models::load_model(dir);
  for (auto& p : gpu.model->parameters()) {
    if (p.tensor->defined()) *p.tensor = p.tensor->to(Device::cuda());
  }
  nn::KVCacheList cc = small_step_caches(cpu.model->num_layers()), gc = small_step_caches(gpu.model->num_layers());
  const Tensor ids = Tensor::from_vector(std::vector<int32_t>{3, 1, 4, 1, 5, 9, 2, 6, 5}, {1, 9});
  cpu.model->forward(ids, &cc, {nullptr, true});
  gpu.model->forward(ids, &gc, {nullptr, true});
  generate::DecodeGraph graph;
  EXPECT_LE(worst_step_error(*cpu.model, cc, *gpu.model, gc, graph), 1e-4);
  EXPECT_GT(graph.replays(), 0);
}

void to_bf16(models::LanguageModel& model, Device device) {
  for (auto& p : model.parameters()) {
    if (p.tensor->defined() && p.tensor->dtype() == Dtype::f32) *p.tensor = p.tensor->to(Dtype::bf16).to(device);
  }
}

// With LMX_CUDA_KV_BF16=1 a bf16 model on the GPU keeps its KV cache in bf16: its decode
// steps stay within bf16 rounding of the CPU's (same bf16 weights, f32 cache), and graph
// replays still equal eager steps bit for bit. By default (the switch off) the cache is f32.
TEST_F(CudaDecode, Bf16ModelKeepsABf16CacheWithinRoundingOfTheCpu) {
  const fs::path dir = fixture("llama");
  if (!fs::exists(dir / "config.json")) GTEST_SKIP() << "no fixture at " << dir;
  std::optional<testing::ScopedEnv> on(std::in_place, "LMX_CUDA_KV_BF16", "1");
  auto cpu = models::load_model(dir), gpu = models::load_model(dir);
  to_bf16(*cpu.model, Device::cpu());
  to_bf16(*gpu.model, Device::cuda());
  nn::KVCacheList cc = small_step_caches(cpu.model->num_layers()), gc = small_step_caches(gpu.model->num_layers());
  const Tensor ids = Tensor::from_vector(std::vector<int32_t>{3, 1, 4, 1, 5, 9, 2, 6, 5}, {1, 9});
  cpu.model->forward(ids, &cc, {nullptr, true});
  gpu.model->forward(ids, &gc, {nullptr, true});
  EXPECT_EQ(gc[0]->state()[0].dtype(), Dtype::bf16);
  EXPECT_EQ(cc[0]->state()[0].dtype(), Dtype::f32);
  generate::DecodeGraph graph;
  const double worst = worst_step_error(*cpu.model, cc, *gpu.model, gc, graph);
  std::printf("bf16 model, bf16 GPU cache vs CPU f32 cache: worst logits relative error %.3g\n", worst);
  EXPECT_LE(worst, 3e-2);  // the bf16 parity tests' bound
  EXPECT_GT(graph.replays(), 0);
  EXPECT_EQ(gc[0]->state()[0].dtype(), Dtype::bf16);
  expect_graph_steps_equal_eager_steps(*gpu.model);

  on.reset();
  const testing::ScopedEnv unset_default("LMX_CUDA_KV_BF16", "");  // empty: the default
  nn::KVCacheList off = small_step_caches(gpu.model->num_layers());
  gpu.model->forward(ids, &off, {nullptr, true});
  EXPECT_EQ(off[0]->state()[0].dtype(), Dtype::f32);
}

}  // namespace
}  // namespace lmx
