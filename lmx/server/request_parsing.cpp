#include "lmx/server/request_parsing.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "lmx/base/error.h"
#include "lmx/server/api_error.h"
#include "lmx/server/chat_messages.h"
#include "lmx/server/choice_fields.h"
#include "lmx/server/request_fields.h"

namespace lmx::server {

namespace {

constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();
constexpr size_t kMaxStopStrings = 16;

std::vector<std::string> read_stop(const RequestFields& f) {
  const auto* v = f.get("stop");
  if (!v) return {};
  if (v->is_string()) {
    if (v->get<std::string>().empty()) throw bad_field("stop", "'stop' strings must not be empty");
    return {v->get<std::string>()};
  }
  if (!v->is_array()) throw bad_field("stop", "'stop' must be a string or an array of strings");
  if (v->size() > kMaxStopStrings)
    throw bad_field("stop", "'stop' holds at most " + std::to_string(kMaxStopStrings) + " strings");
  std::vector<std::string> out;
  for (const auto& s : *v) {
    if (!s.is_string() || s.get<std::string>().empty())
      throw bad_field("stop", "'stop' must be a string or an array of non-empty strings");
    out.push_back(s.get<std::string>());
  }
  return out;
}

std::map<int32_t, float> read_logit_bias(const RequestFields& f, size_t vocab_size) {
  std::map<int32_t, float> out;
  const auto* v = f.object("logit_bias");
  if (!v) return out;
  for (const auto& [key, value] : v->items()) {
    size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(key, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != key.size() || id < 0 || static_cast<unsigned long long>(id) >= vocab_size)
      throw bad_field("logit_bias", "'logit_bias' keys must be token ids in [0, " +
                                        std::to_string(vocab_size) + "), got '" + key + "'");
    if (!value.is_number() || value.get<double>() < -100 || value.get<double>() > 100)
      throw bad_field("logit_bias", "'logit_bias' values must be numbers between -100 and 100");
    out[static_cast<int32_t>(id)] = value.get<float>();
  }
  return out;
}

// response_format: null for text, else the grammar of json_object / json_schema.
std::shared_ptr<const generate::constrained::Grammar> read_response_format(const RequestFields& f) {
  const auto* rf = f.object("response_format");
  if (!rf) return nullptr;
  const RequestFields format(*rf, "response_format.");
  const std::string type = format.string("type").value_or("text");
  if (type == "text") return nullptr;
  if (type == "json_object") return generate::json_object_grammar();
  if (type != "json_schema")
    throw ApiError(400,
                   "'response_format.type' must be \"text\", \"json_object\" or \"json_schema\", "
                   "got \"" + type + "\"",
                   "response_format.type", "invalid_value");
  const auto* js = format.object("json_schema");
  if (!js)
    throw ApiError(400, "'response_format.json_schema' is required when the type is json_schema",
                   "response_format.json_schema", "missing_required_parameter");
  const RequestFields fields(*js, "response_format.json_schema.");
  if (fields.string("name").value_or("").empty())
    throw ApiError(400, "'response_format.json_schema.name' must be a non-empty string",
                   "response_format.json_schema.name", "missing_required_parameter");
  fields.boolean("strict");  // type-checked only: the output always follows the schema
  const auto* schema = fields.object("schema");
  if (!schema)
    throw ApiError(400, "'response_format.json_schema.schema' is required (a JSON schema object)",
                   "response_format.json_schema.schema", "missing_required_parameter");
  try {
    return generate::json_schema_grammar(*schema, "response_format.json_schema.schema");
  } catch (const Error& e) {
    throw ApiError(400, e.what(), "response_format.json_schema.schema", "invalid_json_schema");
  }
}

// The fields both endpoints share. max_tokens_names: the names the token limit may come
// under, the preferred one first.
SamplingRequest read_sampling(const RequestFields& f,
                              size_t vocab_size,
                              std::initializer_list<const char*> max_tokens_names) {
  SamplingRequest r;
  r.model = f.string("model").value_or("");
  r.adapters = f.string("adapters");
  auto& p = r.params;
  for (const char* name : max_tokens_names) {
    if (auto n = f.integer(name, 1, kMaxInt)) {
      p.max_tokens = *n;
      break;
    }
  }
  // OpenAI's defaults: temperature 1, top_p 1; the other filters are off.
  p.temperature = static_cast<float>(f.number("temperature", 0, 100).value_or(1.0));
  p.top_p = static_cast<float>(f.number("top_p", 0, 1).value_or(1.0));
  if (p.top_p <= 0) throw bad_field("top_p", "'top_p' must be greater than 0 and at most 1");
  // -1 is llama.cpp's "off", as 0.
  p.top_k = static_cast<int>(
      std::max<int64_t>(0, f.integer("top_k", -1, std::numeric_limits<int>::max()).value_or(0)));
  p.min_p = static_cast<float>(f.number("min_p", 0, 1).value_or(0.0));
  if (auto v = f.number("presence_penalty", -2, 2)) p.presence_penalty = static_cast<float>(*v);
  if (auto v = f.number("frequency_penalty", -2, 2)) p.frequency_penalty = static_cast<float>(*v);
  if (auto v = f.number("repetition_penalty", 0, 100)) {
    if (*v <= 0)
      throw bad_field("repetition_penalty", "'repetition_penalty' must be greater than 0");
    p.repetition_penalty = static_cast<float>(*v);
  }
  if (auto v = f.integer("seed", std::numeric_limits<int64_t>::min(), kMaxInt))
    p.seed = static_cast<uint64_t>(*v);
  p.logit_bias = read_logit_bias(f, vocab_size);
  r.stop = read_stop(f);
  r.stream = f.boolean("stream").value_or(false);
  if (const auto* so = f.object("stream_options")) {
    r.include_usage =
        RequestFields(*so, "stream_options.").boolean("include_usage").value_or(false);
  }
  r.response_grammar = read_response_format(f);
  return r;
}

// "auto", "none", "required" or {"type": "function", "function": {"name": ...}}.
void read_tool_choice(const RequestFields& f, ChatRequest& r) {
  const auto* tc = f.get("tool_choice");
  if (!tc) return;
  const char* expected =
      "'tool_choice' must be \"auto\", \"none\", \"required\" or "
      "{\"type\": \"function\", \"function\": {\"name\": ...}}";
  if (tc->is_string()) {
    const std::string choice = tc->get<std::string>();
    if (choice == "none") {
      r.tool_choice = ToolChoice::kNone;
    } else if (choice == "required") {
      r.tool_choice = ToolChoice::kRequired;
    } else if (choice != "auto") {
      throw ApiError(400, std::string(expected) + ", got \"" + choice + "\"", "tool_choice",
                     "invalid_value");
    }
    return;
  }
  if (!tc->is_object()) throw bad_field("tool_choice", expected);
  const RequestFields choice(*tc, "tool_choice.");
  const auto* fn = choice.object("function");
  if (choice.string("type").value_or("") != "function" || !fn) throw bad_field("tool_choice", expected);
  const auto name = RequestFields(*fn, "tool_choice.function.").string("name");
  if (!name || name->empty())
    throw bad_field("tool_choice.function.name", "'tool_choice.function.name' must be a non-empty string");
  r.tool_choice = ToolChoice::kFunction;
  r.tool_choice_name = *name;
}

void read_tools(const RequestFields& f, ChatRequest& r) {
  read_tool_choice(f, r);
  const auto* tools = f.array("tools");
  if (!tools || tools->empty()) return;
  for (size_t i = 0; i < tools->size(); ++i) {
    const auto& t = (*tools)[i];
    const std::string where = "tools[" + std::to_string(i) + "]";
    if (!t.is_object() || !t.contains("type") || t["type"] != "function" ||
        !t.contains("function") || !t["function"].is_object())
      throw bad_field(where,
                      "'" + where + "' must be {\"type\": \"function\", \"function\": {...}}");
    const auto& fn = t["function"];
    if (!fn.contains("name") || !fn["name"].is_string() || fn["name"].get<std::string>().empty())
      throw bad_field(where + ".function.name",
                      "'" + where + ".function.name' must be a non-empty string");
    if (fn.contains("parameters") && !fn["parameters"].is_null() && !fn["parameters"].is_object())
      throw bad_field(where + ".function.parameters",
                      "'" + where + ".function.parameters' must be an object");
    try {
      r.tool_specs.push_back(chat::ToolSpec::from_json(t));
    } catch (const Error& e) {
      throw bad_field(where, e.what());
    }
  }
  r.tools = *tools;
}

void check_tool_choice(ChatRequest& r) {
  if (r.tool_choice != ToolChoice::kRequired && r.tool_choice != ToolChoice::kFunction) return;
  if (r.tool_specs.empty())
    throw ApiError(400, "'tool_choice' forces a tool call but 'tools' declares none", "tool_choice",
                   "invalid_value");
  if (r.tool_choice == ToolChoice::kFunction &&
      std::none_of(r.tool_specs.begin(), r.tool_specs.end(),
                   [&](const chat::ToolSpec& t) { return t.name == r.tool_choice_name; }))
    throw ApiError(400, "'tool_choice.function.name' names '" + r.tool_choice_name +
                            "', which is not among 'tools'",
                   "tool_choice.function.name", "invalid_value");
}

}  // namespace

ChatRequest parse_chat_request(const std::string& body, size_t vocab_size) {
  const nlohmann::ordered_json j = parse_body(body);
  const RequestFields f(j);
  ChatRequest r;
  static_cast<SamplingRequest&>(r) =
      read_sampling(f, vocab_size, {"max_completion_tokens", "max_tokens"});
  const auto* messages = f.array("messages");
  if (!messages)
    throw ApiError(400, "'messages' is required", "messages", "missing_required_parameter");
  r.messages = normalize_messages(*messages, r.images);
  read_tools(f, r);
  check_tool_choice(r);
  read_choice_fields(f, r, ChoiceApi::chat);
  return r;
}

CompletionRequest parse_completion_request(const std::string& body, size_t vocab_size) {
  const nlohmann::ordered_json j = parse_body(body);
  const RequestFields f(j);
  CompletionRequest r;
  static_cast<SamplingRequest&>(r) = read_sampling(f, vocab_size, {"max_tokens"});
  read_choice_fields(f, r, ChoiceApi::completions);
  const auto* prompt = f.get("prompt");
  if (!prompt) throw ApiError(400, "'prompt' is required", "prompt", "missing_required_parameter");
  if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
    r.prompt = (*prompt)[0].get<std::string>();
  } else if (prompt->is_string()) {
    r.prompt = prompt->get<std::string>();
  } else {
    throw bad_field("prompt", "'prompt' must be a string (or an array of one string)");
  }
  return r;
}

}  // namespace lmx::server
