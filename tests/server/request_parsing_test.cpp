// parse_chat_request / parse_completion_request on hostile bodies, without a model.
#include "lmx/server/request_parsing.h"

#include <gtest/gtest.h>

#include <string>

#include "lmx/server/api_error.h"

namespace lmx::server {
namespace {

std::string nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// A body nested 200000 deep (400 KB, far under the 8 MB body limit) parsed, and the copy of
// its 'tools' into the request then recursed once per level and overflowed the stack
// (SIGSEGV: one request took the server down). Now a 400 before anything is parsed.
TEST(RequestParsing, DeeplyNestedBodiesAreA400) {
  const std::string tools = R"([{"type":"function","function":{"name":"f","parameters":{"type":"object","x":)" +
                            nested(200000) + "}}}]";
  const std::string chat = R"({"messages":[{"role":"user","content":"hi"}],"tools":)" + tools + "}";
  for (const auto& [body, completion] :
       {std::pair{chat, false}, {R"({"prompt":"a","stop":)" + nested(200000) + "}", true}}) {
    try {
      if (completion) {
        (void)parse_completion_request(body, 100);
      } else {
        (void)parse_chat_request(body, 100);
      }
      ADD_FAILURE() << "accepted";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status(), 400);
      EXPECT_EQ(e.code(), "invalid_json");
      EXPECT_NE(std::string(e.what()).find("the request body: JSON nested deeper than 512 levels"),
                std::string::npos)
          << e.what();
    }
  }
  // Nesting a real request needs stays accepted.
  const std::string ok = R"({"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function",)"
                         R"("function":{"name":"f","parameters":{"type":"object","properties":{"a":)"
                         R"({"type":"array","items":{"type":"array"}}}}}}]})";
  EXPECT_EQ(parse_chat_request(ok, 100).tool_specs.size(), 1u);
}

}  // namespace
}  // namespace lmx::server
