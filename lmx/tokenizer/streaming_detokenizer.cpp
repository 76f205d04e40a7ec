#include "lmx/tokenizer/tokenizer.h"

namespace lmx::tokenizer {

namespace {
bool ends_with_replacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}
}  // namespace

StreamingDetokenizer::StreamingDetokenizer(Tokenizer tokenizer, bool skip_special_tokens)
    : tokenizer_(std::move(tokenizer)), skip_special_tokens_(skip_special_tokens) {}

std::string StreamingDetokenizer::decode_range(size_t begin, size_t end) const {
  // No clean-up of tokenization spaces: it looks across token boundaries.
  return tokenizer_.decode(std::span<const int32_t>(ids_.data() + begin, end - begin),
                           skip_special_tokens_, false);
}

// Decodes a window that starts one emission back, so decoders that look at the first
// token (SentencePiece's leading-space strip, Metaspace) see the same context they
// would in a full decode; the new text is what the window adds past that prefix.
std::string StreamingDetokenizer::add(int32_t id) {
  if (id < 0 || static_cast<size_t>(id) >= tokenizer_.vocab_size()) {
    // Validate eagerly so a bad id fails at the call that passed it.
    tokenizer_.decode(std::span<const int32_t>(&id, 1), false);
  }
  ids_.push_back(id);
  std::string prefix_text = decode_range(prefix_, read_);
  std::string text = decode_range(prefix_, ids_.size());
  if (text.size() <= prefix_text.size() || ends_with_replacement(text) ||
      text.compare(0, prefix_text.size(), prefix_text) != 0) {
    return {};
  }
  std::string out = text.substr(prefix_text.size());
  prefix_ = read_;
  read_ = ids_.size();
  return out;
}

std::string StreamingDetokenizer::finish() {
  std::string prefix_text = decode_range(prefix_, read_);
  std::string text = decode_range(prefix_, ids_.size());
  std::string out;
  if (text.size() > prefix_text.size() && text.compare(0, prefix_text.size(), prefix_text) == 0) {
    out = text.substr(prefix_text.size());
  }
  prefix_ = read_ = ids_.size();
  return out;
}

void StreamingDetokenizer::reset() {
  ids_.clear();
  prefix_ = read_ = 0;
}

}  // namespace lmx::tokenizer
