// The chat page served at GET / (lmx/server/web/, compiled into the binary by
// cmake/embed_files.cmake): what the server answers for a path of the page.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace lmx::server {

struct EmbeddedFile {
  const char* name;  // relative to lmx/server/web
  const char* data;
  size_t size;
};
extern const EmbeddedFile kEmbeddedFiles[];
extern const size_t kEmbeddedFileCount;

struct WebAsset {
  std::string_view body;
  std::string_view content_type;
};

// "/" is index.html, "/web/NAME" any other file of the page; nothing else.
std::optional<WebAsset> find_web_asset(std::string_view path);

// The headers every page response carries: scripts and styles only from the page's own
// files (no inline script, so even markup that escaped escaping could not run), fetches
// only to this server, and no content sniffing.
inline constexpr std::string_view kWebContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

}  // namespace lmx::server
