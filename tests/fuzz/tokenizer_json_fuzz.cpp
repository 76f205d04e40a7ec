// libFuzzer target: tokenizer.json (normalizers, pre-tokenizers, BPE / WordPiece /
// Unigram / WordLevel models, added tokens, post-processors, decoders), then encode and
// decode with what loaded.
#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/tokenizer_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return lmx::fuzz::guarded([&] {
    auto tok = lmx::tokenizer::Tokenizer::from_json_text(lmx::fuzz::as_text(data, size));
    lmx::fuzz::exercise_tokenizer(tok);
  });
}
