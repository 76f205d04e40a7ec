// Prompt-cache files: a model's KV caches saved to one safetensors file in mlx-lm's
// layout, so that a long prompt is prefilled once and reused.
//
// Layout (mlx-lm save_prompt_cache / mlx-swift-lm savePromptCache): tensor "i.j" is
// array j of cache i's state (mlx-lm's quantized caches nest: "i.0.k" keys, "i.1.k"
// values, k = weights, scales, biases); string metadata "0.i.j" is meta_state[j] of
// cache i ("0.i" when the meta state is one string), "1.<key>" is user metadata (mlx-lm's
// cache_prompt stores "model" and "tokenizer_config"), "2.i" is cache i's class name.
// Both the Python and the Swift meta variants of RotatingKVCache and QuantizedKVCache
// are read; files are written with the Python variants.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "lmx/nn/kv_cache.h"

namespace lmx::generate {

struct PromptCache {
  nn::KVCacheList cache;
  std::map<std::string, std::string> metadata;  // user metadata ("1.<key>")
};

void save_prompt_cache(const std::filesystem::path& path,
                       const nn::KVCacheList& cache,
                       const std::map<std::string, std::string>& metadata = {});

// Reads a file; lmx::FormatError naming the file and the cache for anything malformed.
// Every key of `expected` must be present in the file's user metadata with the same
// value, else lmx::InvalidArgument saying which key differs (a cache made by another
// model or tokenizer would silently produce garbage).
PromptCache load_prompt_cache(const std::filesystem::path& path,
                              const std::map<std::string, std::string>& expected = {});

}  // namespace lmx::generate
