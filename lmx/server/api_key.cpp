#include "lmx/server/api_key.h"

#include <cstddef>

namespace lmx::server {

bool api_key_matches(std::string_view authorization, std::string_view key) {
  constexpr std::string_view kScheme = "Bearer ";
  const bool scheme_ok = authorization.substr(0, kScheme.size()) == kScheme;
  const std::string_view given =
      scheme_ok ? authorization.substr(kScheme.size()) : std::string_view();
  // Every byte of the key is compared whatever the given text is, so the time taken
  // says nothing about how long a matching prefix was (only the key's length is public).
  unsigned diff = given.size() == key.size() ? 0u : 1u;
  for (size_t i = 0; i < key.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= static_cast<unsigned>(g ^ static_cast<unsigned char>(key[i]));
  }
  return scheme_ok && diff == 0;
}

}  // namespace lmx::server
