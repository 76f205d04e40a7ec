// Tokenizers built from plain vocab files: GPT-2 vocab.json + merges.txt and BERT
// vocab.txt, assembled the way the HF converters do.
#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/base/json_nesting.h"
#include "lmx/tokenizer/decoders.h"
#include "lmx/tokenizer/models.h"
#include "lmx/tokenizer/normalizers.h"
#include "lmx/tokenizer/post_processors.h"
#include "lmx/tokenizer/pre_tokenizers.h"
#include "lmx/tokenizer/tokenizer.h"
#include "lmx/tokenizer/tokenizer_impl.h"

namespace lmx::tokenizer {

using detail::AddedToken;

Tokenizer Tokenizer::from_vocab_merges(const std::filesystem::path& vocab_json,
                                       const std::filesystem::path& merges_txt) {
  std::string vocab_text = detail::read_file(vocab_json);
  check_json_nesting(vocab_text, vocab_json.string());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(vocab_text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for a number that overflows
    throw FormatError(vocab_json.string() + ": malformed JSON: " + e.what());
  }
  if (!j.is_object())
    throw FormatError(vocab_json.string() + ": expected an object of token -> id");
  detail::Vocab vocab;
  vocab.reserve(j.size());
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() >= (int64_t{1} << 24)) {
      throw FormatError(vocab_json.string() + ": [\"" + it.key() + "\"]: expected a token id");
    }
    vocab.add(it.key(), static_cast<int32_t>(it.value().get<int64_t>()));
  }
  std::string merges_text = detail::read_file(merges_txt);
  std::vector<detail::BpeModel::Merge> merges;
  size_t pos = 0, line_no = 0;
  while (pos < merges_text.size()) {
    size_t end = merges_text.find('\n', pos);
    if (end == std::string::npos) end = merges_text.size();
    std::string_view line(merges_text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    size_t sp = line.find(' ');
    auto where = merges_txt.string() + ": line " + std::to_string(line_no);
    if (sp == std::string_view::npos) throw FormatError(where + ": expected two tokens");
    auto a = vocab.find(line.substr(0, sp));
    auto b = vocab.find(line.substr(sp + 1));
    std::string merged(line.substr(0, sp));
    merged += line.substr(sp + 1);
    auto m = vocab.find(merged);
    if (!a || !b || !m)
      throw FormatError(where + ": merge names a token not in " + vocab_json.string());
    merges.push_back({*a, *b, *m, static_cast<int32_t>(merges.size())});
  }
  auto impl = std::make_shared<detail::TokenizerImpl>();
  impl->source = vocab_json.string();
  std::vector<AddedToken> added;
  if (auto id = vocab.find("<|endoftext|>")) {
    added.push_back({"<|endoftext|>", *id, true, false, false, false, false});
    impl->config.bos_token = impl->config.eos_token = impl->config.unk_token = "<|endoftext|>";
  }
  impl->model = std::make_unique<detail::BpeModel>(std::move(vocab), merges, detail::BpeOptions{});
  impl->pre_tokenizer = std::make_unique<detail::ByteLevelPreTokenizer>(false, true);
  impl->decoder = std::make_unique<detail::ByteLevelDecoder>();
  impl->added.build(std::move(added), nullptr);
  impl->finalize();
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_wordpiece_vocab(const std::filesystem::path& vocab_txt, bool lowercase) {
  std::string text = detail::read_file(vocab_txt);
  detail::Vocab vocab;
  size_t pos = 0;
  int32_t id = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    vocab.add(std::move(line), id++);
  }
  auto impl = std::make_shared<detail::TokenizerImpl>();
  impl->source = vocab_txt.string();
  std::vector<AddedToken> added;
  for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) {
    if (auto tid = vocab.find(t)) added.push_back({t, *tid, true, false, false, false, false});
  }
  auto cls = vocab.find("[CLS]");
  auto sep = vocab.find("[SEP]");
  impl->model =
      std::make_unique<detail::WordPieceModel>(std::move(vocab), detail::WordPieceOptions{});
  impl->normalizer = std::make_unique<detail::BertNormalizer>(true, true, lowercase, lowercase);
  impl->pre_tokenizer = detail::make_bert_pre_tokenizer();
  impl->decoder = std::make_unique<detail::WordPieceDecoder>("##", true);
  if (cls && sep) impl->post_processor = detail::make_bert_processor(*cls, *sep);
  impl->config.unk_token = "[UNK]";
  impl->config.pad_token = "[PAD]";
  impl->config.cls_token = "[CLS]";
  impl->config.sep_token = "[SEP]";
  impl->config.mask_token = "[MASK]";
  impl->added.build(std::move(added), impl->normalizer.get());
  impl->finalize();
  return Tokenizer(std::move(impl));
}

}  // namespace lmx::tokenizer
