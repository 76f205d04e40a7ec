// Hugging Face Hub models: the standard HF cache layout (shared with the Python tools)
// and downloads of what is missing, over libcurl.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lmx::io {

struct HubOptions {
  std::string endpoint = "https://huggingface.co";  // HF_ENDPOINT
  std::string token;                                // HF_TOKEN (bearer auth)
  std::filesystem::path
      cache_dir;         // HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub
  bool offline = false;  // HF_HUB_OFFLINE=1: never touch the network
  bool progress = true;  // a progress bar, drawn only when stderr is a terminal
  int max_attempts = 3;  // per file; later attempts resume the partial download

  // Reads the variables above from the environment.
  static HubOptions from_env();
};

// `org/name[@revision]` (revision defaults to "main").
struct RepoId {
  std::string org;
  std::string name;
  std::string revision = "main";

  std::string id() const { return org + "/" + name; }
};

// nullopt unless `spec` has the form org/name[@revision] with hub-valid names: letters,
// digits, '-', '_', '.', no "..", "--" or leading '.'; a revision of those and '/'.
std::optional<RepoId> parse_repo_id(std::string_view spec);

// A local model folder (returned as is) or a repo id resolved to its snapshot folder in
// the cache, downloading the missing files that a model needs (*.safetensors at the top
// level except consolidated.*, *.json, *.jinja, *.txt, *.tiktoken, *.model). A resolved
// snapshot that already holds config.json and complete weights is used without network.
// lmx::IoError for network / HTTP / offline failures (messages name the repo and file,
// never local paths other than the cache), lmx::FormatError for a listing with unsafe
// file names or a malformed answer, lmx::InvalidArgument for a spec that is neither.
std::filesystem::path resolve_model(std::string_view spec);
std::filesystem::path resolve_model(std::string_view spec, const HubOptions& options);

// <cache>/models--org--name
std::filesystem::path hub_repo_dir(const HubOptions& options, const RepoId& repo);
// The snapshot folder a revision resolves to in the cache (refs/<revision>, or the
// revision itself when it is a commit hash); nullopt when the cache cannot tell.
std::optional<std::filesystem::path> find_cached_snapshot(const HubOptions& options,
                                                          const RepoId& repo);
// The files a complete snapshot still lacks: config.json, the shards its index names, or
// any safetensors file when there is no index. Empty when complete.
std::vector<std::string> missing_model_files(const std::filesystem::path& snapshot);
// Whether resolve_model downloads a file of the repo listing.
bool is_wanted_hub_file(std::string_view name);

}  // namespace lmx::io
