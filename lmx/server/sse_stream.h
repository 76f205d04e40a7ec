// Server-sent events as OpenAI streams them: one "data: {json}" event per chunk, then
// "data: [DONE]".
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace lmx::server {

std::string sse_event(const nlohmann::ordered_json& chunk);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

}  // namespace lmx::server
