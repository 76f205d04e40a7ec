// The --api-key check: the "Authorization: Bearer KEY" header against the server's key,
// compared in time that does not depend on where they differ.
#pragma once

#include <string_view>

namespace lmx::server {

// True when `authorization` is "Bearer <key>" exactly.
bool api_key_matches(std::string_view authorization, std::string_view key);

}  // namespace lmx::server
