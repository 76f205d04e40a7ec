#include "model_bench.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli_common.h"
#include "lmx/backend/cpu/thread_pool.h"
#include "lmx/core/allocator.h"
#include "lmx/core/error.h"
#include "lmx/core/ops/random.h"
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

size_t parameter_bytes(models::LanguageModel& m, bool mapped_only = false) {
  size_t n = 0;
  for (auto& p : m.parameters())
    if (p.tensor->defined() && (!mapped_only || p.tensor->storage()->is_foreign())) n += p.tensor->nbytes();
  return n;
}

}  // namespace

void run_model_bench(const ModelBenchArgs& a) {
  apply_threads(a.threads);
  if (a.prompt_tokens < 1 || a.generation_tokens < 1 || a.runs < 1) {
    throw InvalidArgument("bench: -p, -g and -n must be >= 1");
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
    auto d = parse_dtype(a.dtype);
    if (!d || !is_floating(*d)) throw InvalidArgument("--dtype must be f32, f16 or bf16");
    ro.dtype = *d;
    if (a.quantize) ro.quantization = models::QuantizeOptions{a.q_bits, a.q_group_size, *d};
    models::randomize_model(*owned, ro);
    model = owned.get();
    label = a.config + (a.quantize ? " q" + std::to_string(a.q_bits) + "/g" + std::to_string(a.q_group_size)
                                   : " " + a.dtype) + " (random weights)";
  } else {
    loaded.emplace(models::load_model(resolve_model_arg(a.model)));
    model = loaded->model.get();
    label = a.model;
  }
  const double load_seconds = std::chrono::duration<double>(Clock::now() - load_start).count();
  const size_t weight_bytes = parameter_bytes(*model);

  ops::RandomGenerator rng(7);
  std::vector<double> pp, tg;
  Allocator& alloc = allocator_for(Device::cpu());
  alloc.reset_peak();
  for (int run = 0; run <= a.runs; ++run) {  // run 0 warms up
    std::vector<int32_t> prompt(static_cast<size_t>(a.prompt_tokens));
    for (auto& t : prompt) t = static_cast<int32_t>(rng.next_u64() % static_cast<uint64_t>(model->vocab_size()));
    generate::GenerateParameters p;
    p.temperature = 0;
    p.max_tokens = a.generation_tokens;
    p.prefill_step_size = std::max(a.prompt_tokens, 512);
    // pp: all prompt tokens through the model; tg: decode steps after it.
    nn::KVCacheList cache = generate::make_cache(*model, p);
    auto t0 = Clock::now();
    model->forward(Tensor::from_vector(prompt, {1, a.prompt_tokens}), &cache, {nullptr, true});
    const double prefill = std::chrono::duration<double>(Clock::now() - t0).count();
    int32_t token = prompt.back();
    t0 = Clock::now();
    for (int i = 0; i < a.generation_tokens; ++i) {
      Tensor logits = model->forward(Tensor::from_vector(std::vector<int32_t>{token}, {1, 1}), &cache);
      const float* l = logits.data<float>();
      token = static_cast<int32_t>(std::max_element(l, l + model->vocab_size()) - l);
    }
    const double decode = std::chrono::duration<double>(Clock::now() - t0).count();
    if (run == 0) continue;
    pp.push_back(a.prompt_tokens / prefill);
    tg.push_back(a.generation_tokens / decode);
  }
  const Stats ps = stats(pp), ts = stats(tg);
  // The allocator's peak counts weights it allocated (random init); mapped weights
  // (loaded folders) live outside it and are added.
  const size_t peak = alloc.stats().peak_bytes + parameter_bytes(*model, true);
  if (a.json) {
    nlohmann::json j = {{"model", label},
                        {"threads", cpu::ThreadPool::global().num_threads()},
                        {"prompt_tokens", a.prompt_tokens},
                        {"generation_tokens", a.generation_tokens},
                        {"runs", a.runs},
                        {"prompt_tps", ps.mean},
                        {"prompt_tps_sd", ps.sd},
                        {"generation_tps", ts.mean},
                        {"generation_tps_sd", ts.sd},
                        {"weight_bytes", weight_bytes},
                        {"peak_memory_bytes", peak},
                        {"load_seconds", load_seconds}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("model: %s\nthreads: %d  weights: %s  load: %.2f s\n", label.c_str(),
              cpu::ThreadPool::global().num_threads(), format_bytes(weight_bytes).c_str(), load_seconds);
  std::printf("pp%d: %.2f +- %.2f tokens/s\n", a.prompt_tokens, ps.mean, ps.sd);
  std::printf("tg%d: %.2f +- %.2f tokens/s\n", a.generation_tokens, ts.mean, ts.sd);
  std::printf("peak memory: %s (weights %s)\n", format_bytes(peak).c_str(), format_bytes(weight_bytes).c_str());
}

}  // namespace lmx::cli
