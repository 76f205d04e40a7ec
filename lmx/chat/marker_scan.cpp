#include "lmx/chat/marker_scan.h"

#include <algorithm>

namespace lmx::chat::detail {

MarkerHit find_first_marker(std::string_view s, const std::vector<std::string>& markers) {
  MarkerHit best;
  for (size_t i = 0; i < markers.size(); ++i) {
    size_t p = s.find(markers[i]);
    if (p == std::string_view::npos) continue;
    if (p < best.pos || (p == best.pos && markers[i].size() > markers[best.index].size()))
      best = {p, i};
  }
  return best;
}

size_t partial_marker_suffix(std::string_view s, const std::vector<std::string>& markers) {
  size_t hold = 0;
  for (const auto& m : markers) {
    for (size_t k = std::min(m.size() - 1, s.size()); k > hold; --k) {
      if (s.substr(s.size() - k) == std::string_view(m).substr(0, k)) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}

}  // namespace lmx::chat::detail
