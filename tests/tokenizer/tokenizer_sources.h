// Every tokenizer the tests know, by the names tools/fixtures/make_tokenizer_fixtures.py
// writes expectations under.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "lmx/tokenizer/tokenizer.h"

namespace lmx::tokenizer::test {

struct TokenizerSource {
  std::string name;
  std::filesystem::path path;  // what must exist
  std::function<Tokenizer()> load;
  bool parses_specials = true;  // false: the reference (sentencepiece) treats specials as text
};

const std::vector<TokenizerSource>& tokenizer_sources();
const TokenizerSource* find_source(const std::string& name);

// tests/data/tokenizer/corpus.json: strings, plus invalid UTF-8 byte strings.
struct Corpus {
  std::vector<std::string> strings;
  std::vector<std::string> invalid;  // raw bytes
};
const Corpus& corpus();

}  // namespace lmx::tokenizer::test
