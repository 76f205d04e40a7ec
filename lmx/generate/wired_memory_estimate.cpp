#include "lmx/generate/wired_memory_estimate.h"

#include <algorithm>
#include <cstdint>

#include "lmx/core/allocator.h"
#include "lmx/base/error.h"
#include "lmx/generate/model_container.h"
#include "lmx/generate/token_iterator.h"
#include "lmx/generate/wired_memory_backend.h"
#include "lmx/models/transformer.h"

namespace lmx::generate {
namespace {

constexpr int64_t kCacheStep = 256;  // the caches grow in steps of this many positions

// Sizes saturate here, far above any memory, so that absurd requests (max_tokens near
// INT64_MAX) give an estimate that is refused rather than one that wrapped around to a
// small number and was let through; sums of a few of them cannot overflow.
constexpr size_t kSaturated = SIZE_MAX / 8;

size_t sat_mul(size_t a, size_t b) {
  size_t r = 0;
  return __builtin_mul_overflow(a, b, &r) ? kSaturated : std::min(r, kSaturated);
}

size_t sat_add(size_t a, size_t b) { return std::min(kSaturated, std::min(a, kSaturated) + std::min(b, kSaturated)); }

int64_t sat_add(int64_t a, int64_t b) {
  int64_t r = 0;
  return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

std::string mib(size_t bytes) { return std::to_string((bytes + (size_t{1} << 19)) >> 20) + " MiB"; }

// Bytes one position costs in one layer's cache.
size_t kv_bytes_per_position(int64_t kv_heads,
                             int64_t head_dim,
                             bool quantized,
                             const GenerateParameters& p) {
  const auto elems = static_cast<size_t>(kv_heads * head_dim);
  if (!quantized) return 2 * elems * sizeof(float);
  const auto k_bits = static_cast<size_t>(*p.kv_bits);
  const auto v_bits = static_cast<size_t>(p.kv_value_bits.value_or(*p.kv_bits));
  const auto groups =
      static_cast<size_t>(kv_heads * std::max<int64_t>(1, head_dim / p.kv_group_size));
  return elems * (k_bits + v_bits) / 8 +
         2 * 2 * groups * sizeof(float);  // f32 scales and biases for K and V
}

}  // namespace

MemoryEstimate estimate_memory(models::LanguageModel& model,
                               int64_t prompt_tokens,
                               const GenerateParameters& params,
                               int64_t cached_tokens) {
  MemoryEstimate e;
  e.weight_bytes = region_bytes(weight_regions(model, &e.mapped_weight_bytes));
  e.context_tokens = sat_add(sat_add(cached_tokens, prompt_tokens), params.max_tokens.value_or(0));
  const auto* transformer = dynamic_cast<const models::TransformerLM*>(&model);
  if (transformer) {
    const auto& spec = transformer->spec();
    int64_t widest = 0, heads = 0, longest = 0;
    for (const auto& layer : spec.layers) {
      const auto& a = layer.attention;
      const int64_t head_dim =
          a.head_dim > 0 ? a.head_dim : spec.hidden / std::max<int64_t>(a.heads, 1);
      const int64_t kv_heads = a.kv_heads > 0 ? a.kv_heads : a.heads;
      // What the layer's cache keeps (what each query attends to), and the capacity its
      // buffers grow to in steps, never past the bound.
      const int64_t bound = a.window > 0 ? a.window : params.max_kv_size.value_or(INT64_MAX);
      const int64_t kept = std::min(e.context_tokens, bound);
      const int64_t positions = std::min(sat_add(kept, kCacheStep - 1) / kCacheStep * kCacheStep, bound);
      longest = std::max(longest, kept);
      // Only plain caches of full-attention layers turn quantized (maybe_quantize_kv_cache).
      const bool quantized = params.kv_bits && a.window == 0 && !params.max_kv_size &&
                             e.context_tokens > params.quantized_kv_start;
      // Multi-head latent attention caches its latent and shared rotary key (f32).
      const size_t per_position =
          layer.mla ? static_cast<size_t>(layer.mla_options.kv_lora_rank + layer.mla_options.qk_rope_head_dim) *
                          sizeof(float)
                    : kv_bytes_per_position(kv_heads, head_dim, quantized, params);
      e.kv_bytes = sat_add(e.kv_bytes, sat_mul(static_cast<size_t>(positions), per_position));
      widest = std::max({widest, layer.mlp.intermediate,
                         layer.moe_options.intermediate * layer.moe_options.top_k});
      heads = std::max(heads, a.heads);
    }
    // The largest prefill chunk's activations: residual stream and attention / MLP
    // intermediates, the attention scores over the whole context, the last logits.
    const auto chunk =
        static_cast<size_t>(std::clamp<int64_t>(prompt_tokens, 1, params.prefill_step_size));
    const auto hidden = static_cast<size_t>(spec.hidden);
    e.workspace_bytes = sat_mul(
        sizeof(float), sat_add(sat_add(chunk * (8 * hidden + 3 * static_cast<size_t>(widest)),
                                       sat_mul(static_cast<size_t>(heads) * chunk, static_cast<size_t>(longest))),
                               2 * static_cast<size_t>(spec.vocab)));
  }
  e.total_bytes = e.weight_bytes + e.kv_bytes + e.workspace_bytes;
  return e;
}

void check_memory(const MemoryEstimate& e, size_t available_bytes) {
  if (e.required_bytes() <= available_bytes) return;
  throw OutOfMemory(
      "generate: not enough memory for a context of " + std::to_string(e.context_tokens) +
      " tokens: it needs about " + mib(e.required_bytes()) + " more (KV cache " + mib(e.kv_bytes) +
      ", workspace " + mib(e.workspace_bytes) + ", memory-mapped weights " +
      mib(e.mapped_weight_bytes) + "; weights in all " + mib(e.weight_bytes) + ") but only " +
      mib(available_bytes) +
      " is available; lower max_tokens, or bound the cache with max_kv_size or kv_bits");
}

MemoryMeasurement measure(models::LanguageModel& model,
                          const std::vector<int32_t>& tokens,
                          const GenerateParameters& params) {
  Allocator& alloc = allocator_for(Device::cpu());
  MemoryMeasurement m;
  m.weight_bytes = region_bytes(weight_regions(model));
  alloc.reset_peak();
  const size_t before = alloc.stats().active_bytes;
  {
    nn::KVCacheList cache = prefill_cache(model, tokens, params);
    m.kv_bytes = region_bytes(kv_regions(cache));
    // What this prefill added on top of what was already allocated (weights included).
    m.peak_active_bytes = m.weight_bytes + (alloc.stats().peak_bytes - before);
  }
  m.workspace_bytes = m.peak_active_bytes > m.weight_bytes + m.kv_bytes
                          ? m.peak_active_bytes - m.weight_bytes - m.kv_bytes
                          : 0;
  m.total_bytes = m.weight_bytes + m.kv_bytes + m.workspace_bytes;
  return m;
}

MemoryMeasurement measure(ModelContainer& container,
                          int64_t num_tokens,
                          const GenerateParameters& params) {
  if (num_tokens < 1)
    throw InvalidArgument("measure: num_tokens must be >= 1, got " + std::to_string(num_tokens));
  return container.perform([&](models::LanguageModel& model, const tokenizer::Tokenizer&) {
    std::vector<int32_t> tokens(static_cast<size_t>(num_tokens));
    for (int64_t i = 0; i < num_tokens; ++i)
      tokens[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7 + 1) % model.vocab_size());
    return measure(model, tokens, params);
  });
}

}  // namespace lmx::generate
