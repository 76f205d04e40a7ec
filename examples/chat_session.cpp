// A multi-turn conversation: each turn reuses the KV cache of the previous ones.
//   example_chat_session MODEL
#include <cstdio>

#include "lmx/base/error.h"
#include "lmx/generate/chat_session.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL\n", argv[0]);
    return 2;
  }
  try {
    lmx::generate::GenerateParameters params;
    params.max_tokens = 100;
    lmx::generate::ChatSession session(lmx::generate::ModelContainer::load(argv[1]),
                                       "You are a helpful assistant. Answer briefly.", params);
    for (const char* question : {"What is the capital of France?", "And of Italy?", "Which of the two is larger?"}) {
      std::printf(">> %s\n", question);
      session.stream_response(question, [](const std::string& chunk) {
        std::fputs(chunk.c_str(), stdout);
        std::fflush(stdout);
        return true;
      });
      std::printf("\n(%lld prompt tokens reused from the cache)\n",
                  static_cast<long long>(session.last_info().cached_prompt_tokens));
    }
  } catch (const lmx::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
