// The request fields that shape a reply's choices: `n` (1..kMaxChoices; more is a 400
// naming it) and log-probabilities, which the two endpoints spell differently: chat has
// `logprobs` (boolean) and `top_logprobs` (0..20, only with logprobs true), completions
// the legacy `logprobs` (an integer 0..20: the alternatives per token).
#pragma once

#include <cstdint>

#include "lmx/server/request_fields.h"
#include "lmx/server/request_parsing.h"

namespace lmx::server {

inline constexpr int64_t kMaxChoices = 8;
inline constexpr int64_t kMaxTopLogprobs = 20;

enum class ChoiceApi { chat, completions };

// Sets r.n and r.params.logprobs / top_logprobs.
void read_choice_fields(const RequestFields& f, SamplingRequest& r, ChoiceApi api);

}  // namespace lmx::server
