#include "lmx/core/device.h"

#include <charconv>

#include "lmx/base/error.h"

namespace lmx {

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    const char* first = text.data() + 5;
    const char* last = text.data() + text.size();
    int index = -1;
    auto [end, ec] = std::from_chars(first, last, index);
    if (ec == std::errc() && end == last && first != last && index >= 0) return cuda(index);
  }
  throw InvalidArgument("device '" + text + "' is not cpu, cuda or cuda:N");
}

}  // namespace lmx
