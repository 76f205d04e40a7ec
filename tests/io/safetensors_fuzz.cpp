// libFuzzer target for the safetensors header parser (clang, -DLMX_FUZZ=ON):
//   build-fuzz/tests/io/safetensors_fuzz -max_total_time=60 [corpus-dir]
#include <cstddef>
#include <cstdint>

#include "lmx/base/error.h"
#include "tests/io/safetensors_fuzz_entry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    (void)lmx::io::testing::fuzz_safetensors_header(data, size);
  } catch (const lmx::FormatError&) {
  } catch (const lmx::IoError&) {
  }
  return 0;
}
