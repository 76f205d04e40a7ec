// The chat page's routes (lmx/server/web, compiled in): GET / and /web/NAME answer the
// page's files byte for byte with their types and the security headers; other names
// are 404s; with --api-key the page is served without the key while the API still asks
// for it. (The page in a browser: Server.WebChatPage, tools/web-chat-check.)
#include <fstream>
#include <iterator>

#include "test_server.h"

namespace lmx::testing {
namespace {

std::string source_file(const std::string& name) {
  std::ifstream in(fs::path(LMX_SOURCE_DIR) / "lmx/server/web" / name, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(ServerWeb, ServesThePageFilesWithTheirTypesAndHeaders) {
  LMX_REQUIRE_STORIES();
  server::ServerOptions o;
  o.api_key = "page-key";
  TestServer server(load_stories(), o);
  auto client = server.client();
  const std::vector<std::tuple<std::string, std::string, std::string>> files = {
      {"/", "index.html", "text/html; charset=utf-8"},
      {"/web/chat.js", "chat.js", "text/javascript; charset=utf-8"},
      {"/web/markdown.js", "markdown.js", "text/javascript; charset=utf-8"},
      {"/web/style.css", "style.css", "text/css; charset=utf-8"},
  };
  for (const auto& [path, name, type] : files) {
    const auto r = client->Get(path.c_str());  // no key: the page holds no secret
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << path;
    EXPECT_EQ(r->body, source_file(name)) << path;
    EXPECT_FALSE(r->body.empty()) << path;
    EXPECT_EQ(r->get_header_value("Content-Type"), type) << path;
    EXPECT_NE(r->get_header_value("Content-Security-Policy").find("script-src 'self'"), std::string::npos);
    EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff");
  }
  for (const std::string path : {"/web/nope.js", "/web/", "/web/../CMakeLists.txt", "/index.html",
                                 "/web/%2e%2e%2fhttp_server.cpp"}) {
    const auto r = client->Get(path.c_str());
    ASSERT_TRUE(r) << path;
    EXPECT_TRUE(r->status == 404 || r->status == 401) << path << " " << r->status;
    EXPECT_EQ(r->body.find("#include"), std::string::npos) << path;
  }
  // The API behind the page still wants the key.
  EXPECT_EQ(client->Get("/v1/models")->status, 401);
  EXPECT_EQ(client->Get("/v1/models", {{"Authorization", "Bearer page-key"}})->status, 200);
  EXPECT_EQ(client->Get("/web/nope.js", {{"Authorization", "Bearer page-key"}})->status, 404);
}

}  // namespace
}  // namespace lmx::testing
