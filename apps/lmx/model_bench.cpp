#include "model_bench.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli_common.h"
#include "lmx/base/env_switch.h"
#include "lmx/base/error.h"
#include "lmx/base/thread_pool.h"
#include "lmx/core/allocator.h"
#include "lmx/core/backend.h"
#include "lmx/core/quantized_weight.h"
#include "lmx/core/ops/random.h"
#include "lmx/core/ops/reduce.h"
#include "lmx/generate/batch_kv_cache.h"
#include "lmx/generate/token_iterator.h"
#include "lmx/models/config_reader.h"
#include "lmx/models/load.h"
#include "lmx/models/random_init.h"
#include "lmx/models/registry.h"
#include "lmx/models/tensor_parallel_model.h"

namespace lmx::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct Stats {
  double mean = 0, sd = 0;
};

Stats stats(const std::vector<double>& v) {
  Stats s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(s.sd / static_cast<double>(v.size() - 1)) : 0.0;
  return s;
}

// A prompt of n random tokens.
std::vector<int32_t> random_tokens(ops::RandomGenerator& rng, int64_t n, int64_t vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& v : t) v = static_cast<int32_t>(rng.next_u64() % static_cast<uint64_t>(vocab));
  return t;
}

// A model to benchmark: a folder, or random weights of a config's shape.
struct BenchModel {
  std::unique_ptr<models::LanguageModel> owned;
  std::optional<models::LoadedModel> loaded;
  models::LanguageModel* model = nullptr;
  std::string label;
};

// tensor_parallel: the main model's ranks (a draft loads whole).
BenchModel bench_model(const std::string& folder, const std::string& config, const ModelBenchArgs& a, Device device,
                       int tensor_parallel = 1) {
  BenchModel b;
  if (config.empty()) {
    b.loaded.emplace(models::load_model(resolve_model_arg(folder), {.device = device, .tensor_parallel = tensor_parallel}));
    b.model = b.loaded->model.get();
    b.label = folder;
    return b;
  }
  std::ifstream in(config);
  if (!in) throw IoError("bench: cannot read " + config);
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(config + ": " + e.what());
  }
  const models::ConfigReader reader(cfg, config);
  models::RandomInitOptions ro;
  ro.device = device;
  auto d = parse_dtype(a.dtype);
  if (!d || !is_floating(*d)) throw InvalidArgument("--dtype must be f32, f16 or bf16");
  ro.dtype = *d;
  std::string q_label;
  if (a.quantize) {
    models::QuantizeOptions q;
    q.mode = parse_quant_mode(a.q_mode, "--q-mode");
    auto [group, bits] = default_group_size_and_bits(q.mode);
    q.bits = a.q_bits ? a.q_bits : bits;
    q.group_size = a.q_group_size ? a.q_group_size : group;
    q.scale_dtype = *d;
    ro.quantization = q;
    q_label = std::string(" ") + (q.mode == QuantMode::affine ? "q" : quant_mode_name(q.mode)) +
              std::to_string(q.bits) + "/g" + std::to_string(q.group_size);
  }
  if (tensor_parallel > 1) {  // each rank's shard random on its own (TensorParallelLM::random)
    b.owned = models::TensorParallelLM::random(reader, tensor_parallel, ro);
  } else {
    b.owned = models::create_model(reader);
    models::randomize_model(*b.owned, ro);
  }
  b.model = b.owned.get();
  b.label = config + (a.quantize ? q_label : " " + a.dtype) + " (random weights" +
            (tensor_parallel > 1 ? ", " + std::to_string(tensor_parallel) + " ranks)" : ")");
  return b;
}

// Greedy speculative decoding of -g tokens after a random prompt, against plain decoding
// measured the same way: tokens/s, acceptance and the step costs.
void speculative_bench(models::LanguageModel& model, models::LanguageModel& draft, const ModelBenchArgs& a,
                       ops::RandomGenerator& rng) {
  const int64_t vocab = std::min(model.vocab_size(), draft.vocab_size());
  generate::GenerateParameters p;
  p.max_tokens = a.generation_tokens;
  p.temperature = 0.0f;
  std::vector<double> plain_tps, spec_tps, accept, t_draft, t_verify, t_step;
  for (int run = 0; run <= a.runs; ++run) {  // run 0 warms up
    const std::vector<int32_t> prompt = random_tokens(rng, 16, vocab);
    generate::TokenIteratorOptions plain_opts;
    plain_opts.check_memory = false;
    generate::TokenIterator plain(model, prompt, p, nullptr, plain_opts);
    while (plain.next()) {
    }
    generate::TokenIteratorOptions spec_opts = plain_opts;
    spec_opts.speculative = {&draft, a.num_draft_tokens};
    generate::TokenIterator spec(model, prompt, p, nullptr, spec_opts);
    while (spec.next()) {
    }
    if (run == 0) continue;
    const generate::SpeculativeStats s = spec.speculative_stats();
    const double decoded = static_cast<double>(plain.generated_tokens() - 1);
    plain_tps.push_back(decoded / plain.generation_seconds());
    spec_tps.push_back(static_cast<double>(spec.generated_tokens() - 1) / spec.generation_seconds());
    accept.push_back(s.acceptance_rate());
    t_step.push_back(plain.generation_seconds() / decoded);
    t_draft.push_back(s.draft_seconds / static_cast<double>(std::max<int64_t>(s.drafted, 1)));
    t_verify.push_back(s.verify_seconds / static_cast<double>(std::max<int64_t>(s.rounds, 1)));
  }
  const Stats pl = stats(plain_tps), sp = stats(spec_tps), ac = stats(accept);
  const double step = stats(t_step).mean, dstep = stats(t_draft).mean, verify = stats(t_verify).mean;
  const int n = a.num_draft_tokens;
  std::printf("speculative (greedy, %d draft tokens): %.2f +- %.2f tokens/s vs plain %.2f +- %.2f (x%.2f), "
              "acceptance %.3f\n",
              n, sp.mean, sp.sd, pl.mean, pl.sd, sp.mean / pl.mean, ac.mean);
  std::printf("step costs: main %.3f ms/token, draft %.3f ms/token, verify of %d tokens %.3f ms (x%.2f a step)\n",
              step * 1e3, dstep * 1e3, n + 1, verify * 1e3, verify / step);
  // A round drafts n tokens and verifies n + 1; with each draft accepted independently at
  // rate r it yields (1 - r^(n+1)) / (1 - r) tokens.
  std::printf("predicted speed-up from these costs:");
  for (double r : {0.5, 0.7, 0.9}) {
    const double tokens = (1.0 - std::pow(r, n + 1)) / (1.0 - r);
    std::printf(" at %.1f x%.2f", r, tokens * step / (n * dstep + verify));
  }
  std::printf("\n");
}

// B random prompts of ppN in one forward over batch caches, then tgN greedy
// steps of B tokens each; the argmax runs on the model's device, only B ids come back.
void batched_decode_bench(models::LanguageModel& model, const ModelBenchArgs& a, ops::RandomGenerator& rng) {
  const int64_t vocab = model.vocab_size(), B = a.batch;
  std::vector<double> tps;
  for (int run = 0; run <= a.runs; ++run) {  // run 0 warms up
    nn::KVCacheList cache;
    for (int64_t i = 0; i < model.num_layers(); ++i)
      cache.push_back(std::make_unique<generate::BatchKVCache>(std::vector<int64_t>(static_cast<size_t>(B), 0)));
    const Tensor prompts = Tensor::from_vector(random_tokens(rng, B * a.prompt_tokens, vocab),
                                               {B, a.prompt_tokens});
    Tensor next = ops::argmax(model.forward(prompts, &cache, {nullptr, true}), -1);  // [B, 1]
    std::vector<int32_t> tokens(static_cast<size_t>(B));
    auto read_ids = [&](const Tensor& ids) {
      const std::vector<int64_t> v = ids.to(Device::cpu()).to_int_vector();
      for (int64_t b = 0; b < B; ++b) tokens[static_cast<size_t>(b)] = static_cast<int32_t>(v[static_cast<size_t>(b)]);
    };
    read_ids(next);
    const auto t0 = Clock::now();
    for (int i = 0; i < a.generation_tokens; ++i) {
      Tensor step = model.forward(Tensor::from_vector(tokens, {B, 1}), &cache);  // [B, 1, vocab]
      read_ids(ops::argmax(step, -1));
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (run > 0) tps.push_back(static_cast<double>(B * a.generation_tokens) / seconds);
  }
  const Stats s = stats(tps);
  std::printf("tg%d x b%d: %.2f +- %.2f tokens/s aggregate (%.2f per sequence)\n", a.generation_tokens, a.batch, s.mean,
              s.sd, s.mean / static_cast<double>(B));
}

}  // namespace

void run_model_bench(const ModelBenchArgs& a) {
  apply_threads(a.threads);
  const Device device = device_arg(a.device);
  Backend& backend = backend_for(device);
  if (a.prompt_tokens < 1 || a.generation_tokens < 1 || a.runs < 1 || a.depth < 0 || a.batch < 1) {
    throw InvalidArgument("bench: -p, -g, -n and -b must be >= 1, -d >= 0");
  }
  const auto load_start = Clock::now();
  BenchModel main = bench_model(a.model, a.config, a, device, a.tensor_parallel);
  models::LanguageModel* model = main.model;
  const std::string& label = main.label;
  const double load_seconds = std::chrono::duration<double>(Clock::now() - load_start).count();
  const models::WeightBytes weights = models::weight_bytes(*model);

  ops::RandomGenerator rng(7);
  std::vector<double> pp, tg;
  Allocator& alloc = allocator_for(device);
  alloc.reset_peak();
  size_t kv_bytes = 0;
  int64_t graph_captures = 0, graph_replays = 0;  // of the last run
  const int64_t vocab = model->vocab_size();
  generate::GenerateParameters p;
  p.prefill_step_size = std::max(std::max(a.prompt_tokens, a.depth), 512);
  for (int run = 0; run <= a.runs; ++run) {  // run 0 warms up
    // pp: the prompt through an empty cache, one forward pass.
    double prefill = 0;
    {
      nn::KVCacheList cache = generate::make_cache(*model, p);
      const std::vector<int32_t> prompt = random_tokens(rng, a.prompt_tokens, vocab);
      const auto t0 = Clock::now();
      model->forward(Tensor::from_vector(prompt, {1, a.prompt_tokens}), &cache, {nullptr, true});
      backend.synchronize();
      prefill = std::chrono::duration<double>(Clock::now() - t0).count();
    }
    // tg: greedy decode steps from an empty cache (or after `depth` cached tokens).
    nn::KVCacheList cache = generate::make_cache(*model, p);
    if (a.depth > 0) model->forward(Tensor::from_vector(random_tokens(rng, a.depth, vocab), {1, a.depth}), &cache,
                                    {nullptr, true});
    int32_t token = random_tokens(rng, 1, vocab)[0];
    generate::DecodeGraph graph;  // the steps TokenIterator takes: replayed device graphs where they apply
    std::vector<float> row;
    // As TokenIterator's greedy steps: on a device the argmax runs there (lmx/generate/device_greedy.h).
    const bool greedy_on_device = !device.is_cpu() && device_greedy();
    const auto t0 = Clock::now();
    for (int i = 0; i < a.generation_tokens; ++i) {
      const float* l = nullptr;
      Tensor logits;
      int32_t chosen = -1;
      if (graph.step(*model, cache, token, row, greedy_on_device ? &chosen : nullptr)) {
        if (chosen >= 0) {
          token = chosen;
          continue;
        }
        l = row.data();
      } else {
        logits = model->forward(Tensor::from_vector(std::vector<int32_t>{token}, {1, 1}), &cache);
        if (greedy_on_device) {
          token = ops::argmax(logits.reshape({vocab}), 0).to(Device::cpu()).data<int32_t>()[0];
          continue;
        }
        if (!logits.device().is_cpu()) logits = logits.contiguous().to(Device::cpu());  // the row the sampler reads
        l = logits.data<float>();
      }
      token = static_cast<int32_t>(ops::greedy_argmax({l, static_cast<size_t>(vocab)}));  // greedy, as Sampler at temperature 0
    }
    graph_captures = graph.captures(), graph_replays = graph.replays();
    const double decode = std::chrono::duration<double>(Clock::now() - t0).count();
    // The caches' buffers (whole capacity, as wired memory pins them), on any device.
    kv_bytes = 0;
    for (const auto& c : cache)
      for (const Tensor& t : c->buffers())
        if (t.defined() && t.storage().use_count() >= 2) kv_bytes += t.storage()->nbytes();
    if (run == 0) continue;
    pp.push_back(a.prompt_tokens / prefill);
    tg.push_back(a.generation_tokens / decode);
  }
  const Stats ps = stats(pp), ts = stats(tg);
  // The allocator's peak counts the weights it allocated (dense random init); mapped
  // weights and packed quantized copies live outside it and are added.
  const size_t peak = alloc.stats().peak_bytes + weights.outside_allocator;
  if (a.json) {
    nlohmann::json j = {{"model", label},
                        {"device", backend.describe()},
                        {"threads", ThreadPool::global().num_threads()},
                        {"prompt_tokens", a.prompt_tokens},
                        {"generation_tokens", a.generation_tokens},
                        {"depth", a.depth},
                        {"runs", a.runs},
                        {"prompt_tps", ps.mean},
                        {"prompt_tps_sd", ps.sd},
                        {"generation_tps", ts.mean},
                        {"generation_tps_sd", ts.sd},
                        {"weight_bytes", weights.total},
                        {"kv_bytes", kv_bytes},
                        {"peak_memory_bytes", peak},
                        {"load_seconds", load_seconds}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("model: %s\ndevice: %s  threads: %d  weights: %s  load: %.2f s\n", label.c_str(),
              backend.describe().c_str(), ThreadPool::global().num_threads(), format_bytes(weights.total).c_str(),
              load_seconds);
  std::printf("pp%d: %.2f +- %.2f tokens/s\n", a.prompt_tokens, ps.mean, ps.sd);
  std::printf("tg%d%s: %.2f +- %.2f tokens/s\n", a.generation_tokens,
              a.depth > 0 ? (" @ d" + std::to_string(a.depth)).c_str() : "", ts.mean, ts.sd);
  if (graph_replays > 0) {
    std::printf("decode steps from device graphs: %lld of %d (%lld captures)\n", static_cast<long long>(graph_replays),
                a.generation_tokens, static_cast<long long>(graph_captures));
  }
  std::printf("peak memory: %s (weights %s + KV cache %s, peak / (weights + KV) = %.2f)\n", format_bytes(peak).c_str(),
              format_bytes(weights.total).c_str(), format_bytes(kv_bytes).c_str(),
              static_cast<double>(peak) / static_cast<double>(weights.total + kv_bytes));
  if (a.batch > 1) batched_decode_bench(*model, a, rng);
  if (!a.draft_model.empty() || !a.draft_config.empty()) {
    BenchModel draft = bench_model(a.draft_model, a.draft_config, a, device);
    std::printf("draft: %s\n", draft.label.c_str());
    speculative_bench(*model, *draft.model, a, rng);
  }
}

}  // namespace lmx::cli
