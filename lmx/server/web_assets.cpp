#include "lmx/server/web_assets.h"

namespace lmx::server {

namespace {

std::string_view content_type_of(std::string_view name) {
  auto ends = [&](std::string_view ext) {
    return name.size() >= ext.size() && name.substr(name.size() - ext.size()) == ext;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  return "application/octet-stream";
}

}  // namespace

std::optional<WebAsset> find_web_asset(std::string_view path) {
  std::string_view name;
  if (path == "/") {
    name = "index.html";
  } else if (path.rfind("/web/", 0) == 0) {
    name = path.substr(5);
  } else {
    return std::nullopt;
  }
  // A lookup in a fixed table: no path ever reaches the file system.
  for (size_t i = 0; i < kEmbeddedFileCount; ++i)
    if (name == kEmbeddedFiles[i].name)
      return WebAsset{{kEmbeddedFiles[i].data, kEmbeddedFiles[i].size}, content_type_of(name)};
  return std::nullopt;
}

}  // namespace lmx::server
