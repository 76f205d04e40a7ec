// The simplest use: load a model and get one reply.
//   example_simple_chat MODEL "Why is the sky blue?"
#include <cstdio>

#include "lmx/base/error.h"
#include "lmx/generate/chat_session.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL PROMPT\n", argv[0]);
    return 2;
  }
  try {
    auto model = lmx::generate::ModelContainer::load(argv[1]);  // folder or org/name
    lmx::generate::ChatSession session(model);
    std::printf("%s\n", session.respond(argv[2]).c_str());
  } catch (const lmx::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
