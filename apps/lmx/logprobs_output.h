// --top-logprobs output: one JSON line per generated token, to stderr or to
// --logprobs-file (written through io::AtomicFile, so a device, fifo or symlink there is
// refused before generating). Format (docs/cli.md):
//   {"token": 261, "text": " a", "logprob": -0.12,
//    "top_logprobs": [{"token": 261, "text": " a", "logprob": -0.12}, ...]}
// "text" is what the token adds to the reply after the tokens before it (SentencePiece's
// leading space resolved as in the printed text; part of a character split across
// tokens shows as U+FFFD).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "lmx/tokenizer/tokenizer.h"

namespace lmx::generate {
struct TokenLogprob;
}
namespace lmx::io {
class AtomicFile;
}

namespace lmx::cli {

class LogprobsOutput {
 public:
  // `file` empty: stderr.
  LogprobsOutput(const std::filesystem::path& file, const tokenizer::Tokenizer& tok);
  ~LogprobsOutput();
  void write(const generate::TokenLogprob& t);
  // A new reply starts (chat: each turn); its first token has no text before it.
  void restart() { detok_.reset(); }
  // Commits --logprobs-file (a no-op for stderr).
  void finish();

 private:
  // The text of this reply's tokens so far (special tokens shown).
  tokenizer::StreamingDetokenizer detok_;
  size_t vocab_;
  std::unique_ptr<io::AtomicFile> file_;
};

}  // namespace lmx::cli
