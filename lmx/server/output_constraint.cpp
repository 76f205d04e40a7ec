#include "lmx/server/output_constraint.h"

#include "lmx/chat/tool_call_format.h"
#include "lmx/server/api_error.h"

namespace lmx::server {

namespace {

// A constraint processor follows one generation: the n choices of one request would share
// it, so n > 1 is refused with a constrained reply rather than producing invalid output.
void add_processor(const generate::ModelContainer& model,
                   std::shared_ptr<const generate::constrained::Grammar> grammar, SamplingRequest& request,
                   const char* field) {
  if (request.n > 1)
    throw ApiError(400, std::string("'n' > 1 cannot be combined with '") + field + "' yet", "n",
                   "unsupported_value");
  request.params.logits_processors.push_back(
      generate::constrained_logits_processor(std::move(grammar), model.constraint_vocabulary()));
}

}  // namespace

void constrain_output(const generate::ModelContainer& model, SamplingRequest& request) {
  if (request.response_grammar) add_processor(model, request.response_grammar, request, "response_format");
}

void constrain_output(const generate::ModelContainer& model, ChatRequest& request) {
  if (request.tool_choice != ToolChoice::kRequired && request.tool_choice != ToolChoice::kFunction)
    return constrain_output(model, static_cast<SamplingRequest&>(request));
  const chat::ToolCallFormat format = model.tool_call_format();
  if (format != chat::ToolCallFormat::kJson)
    throw ApiError(400,
                   "'tool_choice' cannot force a call with this model: its tool-call format (" +
                       std::string(chat::to_string(format)) +
                       ") is not supported by constrained decoding (only json: <tool_call>{...}</tool_call>)",
                   "tool_choice", "unsupported_value");
  std::vector<std::pair<std::string, nlohmann::ordered_json>> tools;
  for (const chat::ToolSpec& t : request.tool_specs)
    if (request.tool_choice == ToolChoice::kRequired || t.name == request.tool_choice_name)
      tools.emplace_back(t.name, t.parameters);
  std::shared_ptr<const generate::constrained::Grammar> grammar;
  try {
    grammar = generate::tool_call_grammar(tools, "<tool_call>\n", "arguments", "\n</tool_call>",
                                          "tools: function");
  } catch (const Error& e) {
    throw ApiError(400, e.what(), "tools", "invalid_json_schema");
  }
  add_processor(model, std::move(grammar), request, "tool_choice");
}

}  // namespace lmx::server
