// The low-level loop: raw token ids from a TokenIterator, stopped early by our own rule
// (here: the first newline token or 50 tokens).
//   example_token_loop MODEL "Once upon a time"
#include <cstdio>

#include "lmx/base/error.h"
#include "lmx/generate/model_container.h"
#include "lmx/generate/token_iterator.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL PROMPT\n", argv[0]);
    return 2;
  }
  try {
    auto container = lmx::generate::ModelContainer::load(argv[1]);
    const auto& tok = container->tokenizer();
    lmx::generate::GenerateParameters params;
    params.temperature = 0.0f;  // greedy
    lmx::generate::TokenIterator it(container->model(), tok.encode(argv[2]), params);
    std::vector<int32_t> ids;
    while (auto id = it.next()) {
      if (tok.decode(std::vector<int32_t>{*id}).find('\n') != std::string::npos || ids.size() == 50) break;
      ids.push_back(*id);
    }
    std::printf("%s%s\n", argv[2], tok.decode(ids, true).c_str());
  } catch (const lmx::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
