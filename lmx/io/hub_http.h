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
// resuming that partial file with a Range request when it exists. When the hub names the
// content (X-Linked-Etag, else ETag, of its first response) the file is stored as
// blobs_dir/<etag> and `dest` becomes a relative symlink to it, like huggingface_hub does
// (an existing blob is reused); otherwise `dest` is a plain file.
void hub_download_file(const HubOptions& options,
                       const RepoId& repo,
                       const std::string& sha,
                       const std::string& file,
                       const std::filesystem::path& dest,
                       const std::filesystem::path& blobs_dir);

}  // namespace lmx::io::detail
