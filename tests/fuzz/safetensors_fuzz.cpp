// libFuzzer target: the safetensors reader (header JSON, dtypes, shapes, offsets) over
// arbitrary bytes; every tensor it reports is touched at both ends (ASan checks the span).
#include "tests/fuzz/fuzz_target.h"
#include "tests/io/safetensors_fuzz_entry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return lmx::fuzz::guarded([&] { (void)lmx::io::testing::fuzz_safetensors_header(data, size); });
}
