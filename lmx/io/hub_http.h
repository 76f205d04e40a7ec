// The hub's HTTP side (libcurl); internal to lmx/io.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "lmx/io/hub.h"

namespace lmx::io::detail {

struct HubListing {
  std::string sha;                 // commit the revision points to
  std::vector<std::string> files;  // every rfilename, unfiltered and unchecked
};

// GET {endpoint}/api/models/{org}/{name}/revision/{revision}.
HubListing hub_list_files(const HubOptions& options, const RepoId& repo);

// GET {endpoint}/{org}/{name}/resolve/{sha}/{file} into `dest` through dest + ".incomplete",
// resuming that partial file with a Range request when it exists.
void hub_download_file(const HubOptions& options,
                       const RepoId& repo,
                       const std::string& sha,
                       const std::string& file,
                       const std::filesystem::path& dest);

}  // namespace lmx::io::detail
