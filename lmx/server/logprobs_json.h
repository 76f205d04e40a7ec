// Token log-probabilities in OpenAI's two shapes. A token's text is the token decoded
// alone (a byte of a character split across tokens shows as U+FFFD); `bytes` are the
// UTF-8 bytes of that text.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <vector>

#include "lmx/generate/token_sampler.h"
#include "lmx/tokenizer/tokenizer.h"

namespace lmx::server {

// Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob",
// "bytes"}]}], "refusal": null}.
nlohmann::ordered_json chat_logprobs_json(const tokenizer::Tokenizer& tok,
                                          const std::vector<generate::TokenLogprob>& tokens);
// Completions (legacy): {"tokens", "token_logprobs", "top_logprobs" (one {text: logprob}
// object per token; null when no alternatives were asked), "text_offset"}, offsets
// counted in bytes from `offset` (the text already sent).
nlohmann::ordered_json completion_logprobs_json(const tokenizer::Tokenizer& tok,
                                                const std::vector<generate::TokenLogprob>& tokens,
                                                size_t top_logprobs,
                                                size_t offset = 0);

}  // namespace lmx::server
