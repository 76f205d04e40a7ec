// libFuzzer target: prompt-cache files (safetensors holding KV caches of every kind with
// their meta state). What loads is saved again and must load back with the same kinds
// and offsets.
#include <string>

#include "lmx/generate/prompt_cache.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static lmx::fuzz::ScratchFile file("cache.safetensors");
  return lmx::fuzz::guarded([&] {
    auto pc = lmx::generate::load_prompt_cache(file.write(lmx::fuzz::as_text(data, size)));
    for (const auto& c : pc.cache) {
      (void)c->offset();
      (void)c->state();
      (void)c->meta_state();
    }
    const auto again = file.dir() / "again.safetensors";
    lmx::generate::save_prompt_cache(again, pc.cache, pc.metadata);
    auto back = lmx::generate::load_prompt_cache(again);
    if (back.cache.size() != pc.cache.size() || back.metadata != pc.metadata)
      lmx::fuzz::finding("prompt cache", "a saved cache loads back different");
    for (size_t i = 0; i < pc.cache.size(); ++i) {
      if (back.cache[i]->offset() != pc.cache[i]->offset() ||
          back.cache[i]->class_name() != pc.cache[i]->class_name())
        lmx::fuzz::finding("prompt cache", "a saved cache loads back with another kind or offset");
    }
  });
}
