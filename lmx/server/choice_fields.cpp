#include "lmx/server/choice_fields.h"

#include "lmx/server/api_error.h"

namespace lmx::server {

void read_choice_fields(const RequestFields& f, SamplingRequest& r, ChoiceApi api) {
  r.n = f.integer("n", 1, kMaxChoices).value_or(1);
  auto& p = r.params;
  if (api == ChoiceApi::chat) {
    p.logprobs = f.boolean("logprobs").value_or(false);
    p.top_logprobs = static_cast<int>(f.integer("top_logprobs", 0, kMaxTopLogprobs).value_or(0));
    if (p.top_logprobs > 0 && !p.logprobs)
      throw bad_field("top_logprobs", "'top_logprobs' needs 'logprobs': true");
  } else if (auto k = f.integer("logprobs", 0, kMaxTopLogprobs)) {
    p.logprobs = true;
    p.top_logprobs = static_cast<int>(*k);
  }
}

}  // namespace lmx::server
