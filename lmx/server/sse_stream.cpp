#include "lmx/server/sse_stream.h"

#include "lmx/server/response_building.h"

namespace lmx::server {

// json_text never holds a raw newline (JSON escapes them), so one data line suffices.
std::string sse_event(const nlohmann::ordered_json& chunk) {
  return "data: " + json_text(chunk) + "\n\n";
}

}  // namespace lmx::server
