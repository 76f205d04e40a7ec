#include "lmx/base/error.h"

namespace lmx::detail {

void assert_failed(const char* expr, const char* file, int line) {
  throw InternalError(std::string("internal error: assertion '") + expr + "' failed at " + file +
                      ":" + std::to_string(line));
}

}  // namespace lmx::detail
