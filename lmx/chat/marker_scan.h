// Finding protocol markers in streamed text (not public API).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lmx::chat::detail {

struct MarkerHit {
  size_t pos = std::string_view::npos;  // npos: none found
  size_t index = 0;                     // which of the markers
};

// The earliest of `markers` in `s` (the longest at that position).
MarkerHit find_first_marker(std::string_view s, const std::vector<std::string>& markers);

// The longest suffix of `s` that is a proper prefix of one of `markers`: text that may
// still become a marker, so it is held back.
size_t partial_marker_suffix(std::string_view s, const std::vector<std::string>& markers);

}  // namespace lmx::chat::detail
