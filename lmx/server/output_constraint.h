// The logits processor that makes a reply follow the request's response_format
// (json_object / json_schema) or its tool_choice (required / a named function: the reply
// is one call, written in the model's tool-call format, of a declared tool with
// arguments valid against its parameters).
#pragma once

#include "lmx/generate/model_container.h"
#include "lmx/server/request_parsing.h"

namespace lmx::server {

// Adds the processor to request.params (nothing for free text). Throws ApiError 400
// when a forced call is asked of a model whose tool-call format it cannot be written
// in, or a tool's parameters schema cannot be followed.
void constrain_output(const generate::ModelContainer& model, SamplingRequest& request);
void constrain_output(const generate::ModelContainer& model, ChatRequest& request);

}  // namespace lmx::server
