// libFuzzer target: tiktoken rank files ("base64 rank" lines), then encode and decode.
#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/tokenizer_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static lmx::fuzz::ScratchFile file("tokenizer.model");
  return lmx::fuzz::guarded([&] {
    auto tok = lmx::tokenizer::Tokenizer::from_tiktoken(file.write(lmx::fuzz::as_text(data, size)));
    lmx::fuzz::exercise_tokenizer(tok);
  });
}
