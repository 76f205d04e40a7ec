// libFuzzer target: config.json as model loading reads it: ConfigReader and the
// architecture registry build the (unloaded) model the config describes; every
// parameter's name and shape is then listed.
#include <nlohmann/json.hpp>

#include "lmx/models/config_reader.h"
#include "lmx/models/language_model.h"
#include "lmx/models/registry.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Text that is not JSON never reaches the reader (ModelFolder refuses it first).
  const auto json = nlohmann::json::parse(lmx::fuzz::as_text(data, size), nullptr, false);
  if (json.is_discarded()) return 0;
  return lmx::fuzz::guarded([&] {
    lmx::models::ConfigReader config(json, "config.json");
    auto model = lmx::models::create_model(config);
    (void)model->vocab_size();
    (void)model->num_layers();
    (void)model->layer_windows();
    for (auto& p : model->parameters()) (void)p;
  });
}
