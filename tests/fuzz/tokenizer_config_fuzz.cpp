// libFuzzer target: tokenizer_config.json (special tokens as strings or AddedToken
// objects, chat_template as a string or a named list, flags) beside a small valid
// tokenizer.json, then encode and decode.
#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/tokenizer_exercise.h"

namespace {
constexpr std::string_view kTokenizerJson = R"({
  "model": {"type": "BPE", "vocab": {"<s>": 0, "</s>": 1, "a": 2, "b": 3, "ab": 4, "<unk>": 5},
            "merges": ["a b"], "unk_token": "<unk>"},
  "added_tokens": [{"id": 0, "content": "<s>", "special": true},
                   {"id": 1, "content": "</s>", "special": true}],
  "pre_tokenizer": {"type": "Whitespace"}
})";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return lmx::fuzz::guarded([&] {
    auto tok = lmx::tokenizer::Tokenizer::from_json_text(kTokenizerJson, lmx::fuzz::as_text(data, size));
    lmx::fuzz::exercise_tokenizer(tok);
    (void)tok.special_tokens();
    (void)tok.num_special_tokens_to_add(true);
  });
}
