// What the tokenizer targets do with a tokenizer that loaded: encode a fixed text with
// specials, words, digits, blanks, several scripts and invalid UTF-8, decode the ids
// back, stream-detokenize them, and decode the first ids of the vocabulary.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "lmx/tokenizer/tokenizer.h"

namespace lmx::fuzz {

inline void exercise_tokenizer(const tokenizer::Tokenizer& tok) {
  static constexpr std::string_view kText =
      "<s>Hello  world!\n\t123 4567 it's <|endoftext|> \xC3\xA9t\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC "
      "\xF0\x9F\x98\x80 \xFF\xC3 [MASK] </s>";
  std::vector<int32_t> ids = tok.encode(kText);
  (void)tok.decode(ids, false);
  (void)tok.decode(ids, true);
  auto stream = tok.streaming_detokenizer();
  for (int32_t id : ids) (void)stream.add(id);
  (void)stream.finish();
  std::vector<int32_t> first;
  for (int32_t id = 0; id < static_cast<int32_t>(std::min<size_t>(tok.vocab_size(), 64)); ++id) {
    first.push_back(id);
    (void)tok.id_to_token(id);
  }
  (void)tok.decode(first, false);
}

}  // namespace lmx::fuzz
