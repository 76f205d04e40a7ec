#include "logprobs_output.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "lmx/generate/generate.h"
#include "lmx/io/atomic_write.h"
#include "lmx/tokenizer/tokenizer.h"

namespace lmx::cli {
namespace {

// A token, the text it adds after the ones `detok` holds ("" for an id the tokenizer
// lacks: the model's vocabulary may be padded past the tokenizer's), its logprob.
nlohmann::json token_json(const tokenizer::StreamingDetokenizer& detok, size_t vocab, int32_t id, float logprob) {
  std::string text;
  if (id >= 0 && static_cast<size_t>(id) < vocab) {
    tokenizer::StreamingDetokenizer next = detok;
    text = next.add(id);
    text += next.finish();
  }
  return {{"token", id}, {"text", std::move(text)}, {"logprob", logprob}};
}

}  // namespace

LogprobsOutput::LogprobsOutput(const std::filesystem::path& file, const tokenizer::Tokenizer& tok)
    : detok_(tok.streaming_detokenizer(false)), vocab_(tok.vocab_size()) {
  if (!file.empty()) file_ = std::make_unique<io::AtomicFile>(file);
}

LogprobsOutput::~LogprobsOutput() = default;

void LogprobsOutput::write(const generate::TokenLogprob& t) {
  nlohmann::json line = token_json(detok_, vocab_, t.token, t.logprob);
  nlohmann::json top = nlohmann::json::array();
  for (const auto& [id, lp] : t.top_logprobs) top.push_back(token_json(detok_, vocab_, id, lp));
  line["top_logprobs"] = std::move(top);
  if (t.token >= 0 && static_cast<size_t>(t.token) < vocab_) detok_.add(t.token);
  const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (file_) {
    file_->write_all(text.data(), text.size());
  } else {
    std::fwrite(text.data(), 1, text.size(), stderr);
    std::fflush(stderr);
  }
}

void LogprobsOutput::finish() {
  if (file_) file_->commit();
}

}  // namespace lmx::cli
