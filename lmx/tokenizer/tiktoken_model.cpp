// tiktoken rank files ("<base64 token> <rank>" per line, e.g. Meta's Llama-3
// tokenizer.model) -> a byte-level BPE TokenizerImpl.
#include <string>

#include "lmx/base/base64.h"
#include "lmx/base/error.h"
#include "lmx/tokenizer/decoders.h"
#include "lmx/tokenizer/models.h"
#include "lmx/tokenizer/post_processors.h"
#include "lmx/tokenizer/pre_tokenizers.h"
#include "lmx/tokenizer/tokenizer_impl.h"
#include "lmx/tokenizer/unicode.h"

namespace lmx::tokenizer::detail {

namespace {

// Llama-3's split pattern (tiktoken's cl100k family).
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::string to_byte_level(std::string_view bytes) {
  std::string out;
  for (char c : bytes) out.append(byte_char_utf8(static_cast<uint8_t>(c)));
  return out;
}

}  // namespace

std::shared_ptr<TokenizerImpl> load_tiktoken(std::string_view data, const std::string& source) {
  Vocab vocab;
  std::vector<std::string> raw;  // token bytes by rank
  size_t line_no = 0, pos = 0;
  std::string bytes;
  while (pos < data.size()) {
    size_t end = data.find('\n', pos);
    if (end == std::string_view::npos) end = data.size();
    std::string_view line = data.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    auto bad = [&](const std::string& why) {
      throw FormatError(source + ": line " + std::to_string(line_no) + ": " + why);
    };
    if (sp == std::string_view::npos) bad("expected '<base64 token> <rank>'");
    auto decoded = decode_base64(line.substr(0, sp));
    if (!decoded || decoded->empty()) bad("invalid base64 token");
    bytes = std::move(*decoded);
    std::string_view rank_text = line.substr(sp + 1);
    if (rank_text.empty() || rank_text.size() > 9) bad("invalid rank");
    int32_t rank = 0;
    for (char c : rank_text) {
      if (c < '0' || c > '9') bad("invalid rank");
      rank = rank * 10 + (c - '0');
    }
    // Ranks are dense from 0, so a rank beyond the file's byte count is a gap larger than
    // the file: refused before it sizes the table (a one-line file could ask for 32 GB).
    if (static_cast<size_t>(rank) > data.size())
      bad("rank " + std::to_string(rank) + " leaves a gap larger than the file");
    if (static_cast<size_t>(rank) >= raw.size()) raw.resize(static_cast<size_t>(rank) + 1);
    raw[rank] = bytes;
    vocab.add(to_byte_level(bytes), rank);
  }
  if (raw.empty()) throw FormatError(source + ": empty tiktoken file");
  for (int b = 0; b < 256; ++b) {
    if (!vocab.find(byte_char_utf8(static_cast<uint8_t>(b)))) {
      throw FormatError(source + ": tiktoken vocab lacks the single byte " + std::to_string(b));
    }
  }
  // Every split of a token into two tokens is a merge with the token's rank: the
  // lowest-rank adjacent pair merges first, which is tiktoken's algorithm.
  std::vector<BpeModel::Merge> merges;
  merges.reserve(raw.size() * 4);
  std::string left, right;
  for (size_t rank = 0; rank < raw.size(); ++rank) {
    const std::string& s = raw[rank];
    for (size_t cut = 1; cut < s.size(); ++cut) {
      auto a = vocab.find(to_byte_level(std::string_view(s).substr(0, cut)));
      if (!a) continue;
      auto b = vocab.find(to_byte_level(std::string_view(s).substr(cut)));
      if (!b) continue;
      // A pair must only merge when its rank beats both parts (always true in tiktoken).
      merges.push_back({*a, *b, static_cast<int32_t>(rank), static_cast<int32_t>(rank)});
    }
  }
  auto impl = std::make_shared<TokenizerImpl>();
  impl->source = source;
  const size_t n = raw.size();
  BpeOptions opt;
  opt.ignore_merges = true;
  impl->model = std::make_unique<BpeModel>(std::move(vocab), merges, std::move(opt));
  std::vector<std::unique_ptr<PreTokenizer>> pre;
  pre.push_back(std::make_unique<SplitPreTokenizer>(Pattern::regex(kLlama3Pattern, source),
                                                    SplitBehavior::kIsolated, false));
  pre.push_back(std::make_unique<ByteLevelPreTokenizer>(false, false));
  impl->pre_tokenizer = std::make_unique<SequencePreTokenizer>(std::move(pre));
  impl->decoder = std::make_unique<ByteLevelDecoder>();

  // Meta's Llama-3 special tokens follow the 128000 ranks.
  std::vector<AddedToken> added;
  if (n == 128000) {
    const char* named[] = {"<|begin_of_text|>",
                           "<|end_of_text|>",
                           "<|reserved_special_token_0|>",
                           "<|reserved_special_token_1|>",
                           "<|reserved_special_token_2|>",
                           "<|reserved_special_token_3|>",
                           "<|start_header_id|>",
                           "<|end_header_id|>",
                           "<|reserved_special_token_4|>",
                           "<|eot_id|>"};
    int32_t id = 128000;
    for (const char* t : named) added.push_back({t, id++, true, false, false, false, false});
    for (int k = 5; id < 128256; ++k) {
      added.push_back({"<|reserved_special_token_" + std::to_string(k) + "|>", id++, true, false,
                       false, false, false});
    }
    impl->config.bos_token = "<|begin_of_text|>";
    impl->config.eos_token = "<|end_of_text|>";
    std::vector<TemplatePiece> single = {{false, 0, {128000}, 0}, {true, 0, {}, 0}};
    std::vector<TemplatePiece> pair = {
        {false, 0, {128000}, 0}, {true, 0, {}, 0}, {false, 0, {128000}, 1}, {true, 1, {}, 1}};
    impl->post_processor = std::make_unique<TemplateProcessor>(std::move(single), std::move(pair));
  }
  impl->added.build(std::move(added), nullptr);
  impl->vocab_size = std::max(n, static_cast<size_t>(impl->added.max_id() + 1));
  return impl;
}

}  // namespace lmx::tokenizer::detail
