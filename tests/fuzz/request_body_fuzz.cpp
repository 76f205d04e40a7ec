// libFuzzer target: the JSON bodies of POST /v1/chat/completions and /v1/completions as
// `lmx serve` reads them (every field type- and range-checked). Byte 0 picks the endpoint.
#include <string>

#include "lmx/server/request_parsing.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string body(lmx::fuzz::as_text(data + 1, size - 1));
  return lmx::fuzz::guarded([&] {
    if (data[0] & 1) {
      (void)lmx::server::parse_completion_request(body, 1000);
    } else {
      (void)lmx::server::parse_chat_request(body, 1000);
    }
  });
}
