#include "model_bench.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli_common.h"
#include "lmx/base/error.h"
#include "lmx/base/thread_pool.h"
#include "lmx/core/allocator.h"
#include "lmx/core/backend.h"
#include "lmx/core/ops/random.h"
#include "lmx/core/ops/reduce.h"
#include "lmx/generate/token_iterator.h"
#include "lmx/models/config_reader.h"
#include "lmx/models/load.h"
#include "lmx/models/random_init.h"
#include "lmx/models/registry.h"

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

}  // namespace

void run_model_bench(const ModelBenchArgs& a) {
  apply_threads(a.threads);
  const Device device = device_arg(a.device);
  Backend& backend = backend_for(device);
  if (a.prompt_tokens < 1 || a.generation_tokens < 1 || a.runs < 1 || a.depth < 0) {
    throw InvalidArgument("bench: -p, -g and -n must be >= 1, -d >= 0");
  }
  const auto load_start = Clock::now();
  std::unique_ptr<models::LanguageModel> owned;
  std::optional<models::LoadedModel> loaded;
  models::LanguageModel* model = nullptr;
  std::string label;
  if (!a.config.empty()) {
    std::ifstream in(a.config);
    if (!in) throw IoError("bench: cannot read " + a.config);
    nlohmann::json cfg;
    try {
      cfg = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(a.config + ": " + e.what());
    }
    owned = models::create_model(models::ConfigReader(cfg, a.config));
    models::RandomInitOptions ro;
    ro.device = device;
    auto d = parse_dtype(a.dtype);
    if (!d || !is_floating(*d)) throw InvalidArgument("--dtype must be f32, f16 or bf16");
    ro.dtype = *d;
    if (a.quantize) ro.quantization = models::QuantizeOptions{a.q_bits, a.q_group_size, *d};
    models::randomize_model(*owned, ro);
    model = owned.get();
    label = a.config + (a.quantize ? " q" + std::to_string(a.q_bits) + "/g" + std::to_string(a.q_group_size)
                                   : " " + a.dtype) + " (random weights)";
  } else {
    loaded.emplace(models::load_model(resolve_model_arg(a.model), models::LoadOptions{.device = device}));
    model = loaded->model.get();
    label = a.model;
  }
  const double load_seconds = std::chrono::duration<double>(Clock::now() - load_start).count();
  const models::WeightBytes weights = models::weight_bytes(*model);

  ops::RandomGenerator rng(7);
  std::vector<double> pp, tg;
  Allocator& alloc = allocator_for(device);
  alloc.reset_peak();
  size_t kv_bytes = 0;
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
    const auto t0 = Clock::now();
    for (int i = 0; i < a.generation_tokens; ++i) {
      Tensor logits = model->forward(Tensor::from_vector(std::vector<int32_t>{token}, {1, 1}), &cache);
      if (!logits.device().is_cpu()) logits = logits.contiguous().to(Device::cpu());  // the row the sampler reads
      const float* l = logits.data<float>();
      token = static_cast<int32_t>(ops::greedy_argmax({l, static_cast<size_t>(vocab)}));  // greedy, as Sampler at temperature 0
    }
    const double decode = std::chrono::duration<double>(Clock::now() - t0).count();
    // The caches' buffers (whole capacity, as wired memory pins them), on any device.
    kv_bytes = 0;
    for (const auto& c : cache)
      for (const Tensor& t : c->state())
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
  std::printf("peak memory: %s (weights %s + KV cache %s, peak / (weights + KV) = %.2f)\n", format_bytes(peak).c_str(),
              format_bytes(weights.total).c_str(), format_bytes(kv_bytes).c_str(),
              static_cast<double>(peak) / static_cast<double>(weights.total + kv_bytes));
}

}  // namespace lmx::cli
