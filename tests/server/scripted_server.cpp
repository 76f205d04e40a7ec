// A server for clients in other languages (tools/openai-client): stories260K with
// Qwen2.5's chat template (tests/data/chat/tool_loop.json) on a free 127.0.0.1 port.
// Each request's reply is forced to the text of SCRIPT_FILE when that file is not
// empty (as server_tools_test does); an empty file lets the model speak. Prints
// "port N", serves until stdin closes. Exit 77: the shared test data is missing.
// With DELAY_FILE (tools/web-chat-check), each decode step of a request sleeps the
// milliseconds that file holds when the request starts (empty or 0: none), so a
// browser can press stop while a reply is still streaming. LMX_API_KEY set: the server
// asks for that key (as `lmx serve` does).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <iostream>
#include <iterator>

#include "test_server.h"

int main(int argc, char** argv) {
  using namespace lmx::testing;
  if (argc != 2 && argc != 3) {
    std::fprintf(stderr, "usage: scripted_server SCRIPT_FILE [DELAY_FILE]\n");
    return 2;
  }
  if (!have_stories()) {
    std::fprintf(stderr, "scripted_server: no %s\n", shared_data("models/stories260K").c_str());
    return 77;
  }
  const std::string script_file = argv[1];
  const std::string delay_file = argc == 3 ? argv[2] : "";
  auto model = load_stories(tool_loop_fixture()["template"].get<std::string>());
  lmx::server::ServerOptions options;
  if (const char* key = std::getenv("LMX_API_KEY")) options.api_key = key;
  options.customize_parameters = [&](lmx::generate::GenerateParameters& p) {
    if (!delay_file.empty()) {
      int delay_ms = 0;
      std::ifstream(delay_file) >> delay_ms;
      if (delay_ms > 0)
        p.logits_processors.push_back([delay_ms](const std::vector<int32_t>&, std::vector<float>&) {
          std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
        });
    }
    std::ifstream in(script_file);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.empty()) return;
    auto tokens = std::make_shared<std::vector<int32_t>>(model->tokenizer().encode(text, false));
    auto step = std::make_shared<size_t>(0);
    p.logits_processors.push_back(
        [tokens, step](const std::vector<int32_t>&, std::vector<float>& logits) {
          force_script(*tokens, (*step)++, logits);
        });
  };
  TestServer server(model, options);
  std::printf("port %d\n", server.port());
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  return 0;
}
