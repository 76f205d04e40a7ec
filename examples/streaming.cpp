// Streaming: print text as it is generated, then the statistics.
//   example_streaming MODEL "Tell me a story"
#include <cstdio>

#include "lmx/base/error.h"
#include "lmx/generate/generate.h"
#include "lmx/generate/model_container.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL PROMPT\n", argv[0]);
    return 2;
  }
  try {
    auto container = lmx::generate::ModelContainer::load(argv[1]);
    lmx::generate::UserInput input;
    input.prompt = argv[2];
    std::vector<int32_t> prompt = container->prepare(input);
    lmx::generate::GenerateParameters params;
    params.max_tokens = 200;
    params.temperature = 0.7f;
    lmx::generate::GenerateOptions options;
    options.eos_ids = container->eos_ids();
    container->perform([&](lmx::models::LanguageModel& model, const lmx::tokenizer::Tokenizer& tok) {
      lmx::generate::Generation gen(model, tok, prompt, params, options);
      while (auto event = gen.next()) {
        if (event->kind == lmx::generate::GenerationEvent::Kind::text) {
          std::fputs(event->text.c_str(), stdout);
          std::fflush(stdout);
        } else if (event->kind == lmx::generate::GenerationEvent::Kind::info) {
          std::printf("\n[%lld prompt tokens at %.1f tok/s, %lld generated at %.1f tok/s, stop: %s]\n",
                      static_cast<long long>(event->info.prompt_tokens), event->info.prompt_tps,
                      static_cast<long long>(event->info.generated_tokens), event->info.generation_tps,
                      lmx::generate::stop_reason_name(event->info.stop_reason));
        }
      }
    });
  } catch (const lmx::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
