// The server under test: stories260K (../shared/data) imported into a temporary folder,
// served in-process on an ephemeral 127.0.0.1 port, and the helpers the tests talk to
// it with (httplib::Client, SSE parsing, a raw socket that leaves mid-stream).
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "../generate/shared_data.h"
#include "lmx/generate/model_container.h"
#include "lmx/io/llama2c_import.h"
#include "lmx/models/embed/embedder.h"
#include "lmx/server/http_server.h"

namespace lmx::testing {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

inline bool have_stories() { return fs::exists(shared_data("models/stories260K/stories260K.bin")); }

// stories260K, plain (no chat template) or with a template of ../shared/data/chat-templates;
// `options` as the server's (tensor_parallel: split over ranks).
inline std::shared_ptr<generate::ModelContainer> load_stories(
    const std::string& chat_template = "", const models::LoadOptions& options = {}) {
  const fs::path src = shared_data("models/stories260K");
  const fs::path dir = fs::temp_directory_path() / ("lmx-server-" + std::to_string(::getpid()) +
                                                    (chat_template.empty() ? "" : "-templated") + "-" +
                                                    std::to_string(options.tensor_parallel));
  io::import_llama2c(src / "stories260K.bin", src / "tok512.bin", dir);
  if (!chat_template.empty()) {
    std::ifstream in(shared_data("chat-templates/" + chat_template));
    std::ofstream(dir / "chat_template.jinja") << in.rdbuf();
  }
  auto container = generate::ModelContainer::load(dir.string(), options);
  fs::remove_all(dir);
  return container;
}

// A logits processor's step that forces `tokens`, then EOS (id 2), whatever the model
// would say: scripted replies.
inline void force_script(const std::vector<int32_t>& tokens,
                         size_t step,
                         std::vector<float>& logits) {
  const int32_t want = step < tokens.size() ? tokens[step] : 2;
  for (size_t i = 0; i < logits.size(); ++i)
    logits[i] = static_cast<int32_t>(i) == want ? 100.0f : -100.0f;
}

// tests/data/chat/tool_loop.json: Qwen2.5's template, a weather tool, scripted replies
// and Python jinja2's rendering of the tool-result round.
inline json tool_loop_fixture() {
  json j;
  std::ifstream(fs::path(LMX_SOURCE_DIR) / "tests/data/chat/tool_loop.json") >> j;
  return j;
}

class TestServer {
 public:
  TestServer(std::shared_ptr<generate::ModelContainer> model, server::ServerOptions options,
             std::shared_ptr<const models::embed::Embedder> embedder = nullptr)
      : server_(std::move(model), with_loopback(std::move(options)), std::move(embedder)) {
    port_ = server_.bind();
    thread_ = std::thread([this] { server_.listen(); });
  }
  ~TestServer() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port_);
    c->set_connection_timeout(5);
    c->set_read_timeout(60);
    return c;
  }
  httplib::Result post(const std::string& path,
                       const std::string& body,
                       const httplib::Headers& headers = {}) const {
    return client()->Post(path.c_str(), headers, body, "application/json");
  }
  httplib::Result post(const std::string& path, const json& body) const {
    return post(path, body.dump());
  }

 private:
  static server::ServerOptions with_loopback(server::ServerOptions o) {
    o.host = "127.0.0.1";
    o.port = 0;
    if (o.model_id.empty()) o.model_id = "stories260K";
    return o;
  }
  server::HttpServer server_;
  int port_ = 0;
  std::thread thread_;
};

// The payloads of a text/event-stream body ("data: X\n\n" -> X), in order.
inline std::vector<std::string> sse_payloads(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) {
      ADD_FAILURE() << "unterminated event: " << body.substr(pos);
      break;
    }
    const std::string event = body.substr(pos, end - pos);
    EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
    out.push_back(event.substr(6));
    pos = end + 2;
  }
  return out;
}

// Checks the OpenAI error shape and returns the error object.
inline json expect_openai_error(const httplib::Result& res, int status) {
  EXPECT_TRUE(res);
  if (!res) return json();
  EXPECT_EQ(res->status, status) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  const json j = json::parse(res->body, nullptr, false);
  EXPECT_TRUE(j.is_object() && j.contains("error")) << res->body;
  if (!j.is_object() || !j.contains("error")) return json();
  const json& e = j["error"];
  EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty()) << res->body;
  EXPECT_TRUE(e["type"].is_string()) << res->body;
  EXPECT_TRUE(e.contains("param") && (e["param"].is_null() || e["param"].is_string())) << res->body;
  EXPECT_TRUE(e.contains("code") && (e["code"].is_null() || e["code"].is_string())) << res->body;
  return e;
}

// Sends `request` on a raw loopback connection, reads until `until` has arrived (or
// 10 s passed), then closes the socket: a client that leaves mid-stream.
inline std::string send_and_leave(int port, const std::string& request, const std::string& until) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string got;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    timeval tv{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    char buf[4096];
    while (got.find(until) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n == 0) break;
      if (n > 0) got.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return got;
}

inline std::string http_post_text(const std::string& path, const std::string& body) {
  return "POST " + path +
         " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// "name{labels}" (or "name") -> value, for every sample line; every line is checked
// against the text format.
inline std::map<std::string, double> parse_metrics(const std::string& text) {
  std::map<std::string, double> out;
  const std::regex sample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})?) (\S+)$)");
  const std::regex comment(R"(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$)");
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, sample)) {
      out[m[1]] = std::stod(m[3]);
    } else {
      EXPECT_TRUE(std::regex_match(line, comment)) << "not Prometheus text: " << line;
    }
  }
  return out;
}

// Text events of one ModelContainer::generate: the independent reference.
struct Reference {
  std::string text;
  generate::GenerationInfo info;
};
inline Reference reference_generate(generate::ModelContainer& model,
                                    const generate::UserInput& input,
                                    const generate::GenerateParameters& params) {
  Reference r;
  r.info = model.generate(input, params, [&](const generate::GenerationEvent& e) {
    if (e.kind == generate::GenerationEvent::Kind::text) r.text += e.text;
    return true;
  });
  return r;
}

}  // namespace lmx::testing

#define LMX_REQUIRE_STORIES() \
  LMX_REQUIRE_SHARED(::lmx::testing::shared_data("models/stories260K/stories260K.bin"))

namespace lmx::testing {

// A suite sharing one server of plain stories260K, started once for the suite.
class StoriesServerSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have_stories()) return;
    model_ = load_stories();
    server_ = std::make_unique<TestServer>(model_, server::ServerOptions{});
  }
  static void TearDownTestSuite() {
    server_.reset();
    model_.reset();
  }
  void SetUp() override { LMX_REQUIRE_STORIES(); }

  static inline std::shared_ptr<generate::ModelContainer> model_;
  static inline std::unique_ptr<TestServer> server_;
};

}  // namespace lmx::testing
