#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/io/atomic_write.h"
#include "lmx/io/detail.h"
#include "lmx/io/hub.h"
#include "lmx/io/hub_http.h"

namespace lmx::io {
namespace fs = std::filesystem;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

bool is_truthy(std::string v) {
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  return v == "1" || v == "true" || v == "yes" || v == "on";
}

bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
}

bool valid_name_part(std::string_view s) {
  if (s.empty() || s.size() > 96 || s.front() == '.' || s.front() == '-') return false;
  if (s.find("..") != std::string_view::npos || s.find("--") != std::string_view::npos) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), is_name_char);
}

bool valid_revision(std::string_view s) {
  if (s.empty() || s.size() > 256) return false;
  if (!std::all_of(s.begin(), s.end(), [](char c) { return is_name_char(c) || c == '/'; })) {
    return false;
  }
  return detail::is_safe_relative_path(s);
}

bool is_commit_hash(std::string_view s) {
  return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) {
           return std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f');
         });
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string join(const std::vector<std::string>& v, size_t max_items = 10) {
  std::string out;
  for (size_t i = 0; i < v.size() && i < max_items; ++i) out += (i ? ", " : "") + v[i];
  if (v.size() > max_items) out += ", ... (" + std::to_string(v.size()) + " in all)";
  return out;
}

// Download order: config.json last, so its presence marks a finished download (the
// weights and the index come just before it).
int download_rank(const std::string& f) {
  if (f == "config.json") return 3;
  if (f == "model.safetensors.index.json") return 2;
  if (ends_with(f, ".safetensors")) return 1;
  return 0;
}

}  // namespace

HubOptions HubOptions::from_env() {
  HubOptions o;
  if (auto e = env("HF_ENDPOINT"); !e.empty()) {
    while (!e.empty() && e.back() == '/') e.pop_back();
    o.endpoint = e;
  }
  o.token = env("HF_TOKEN");
  if (auto c = env("HF_HUB_CACHE"); !c.empty()) {
    o.cache_dir = c;
  } else if (auto h = env("HF_HOME"); !h.empty()) {
    o.cache_dir = fs::path(h) / "hub";
  } else if (auto x = env("XDG_CACHE_HOME"); !x.empty()) {
    o.cache_dir = fs::path(x) / "huggingface" / "hub";
  } else {
    o.cache_dir = fs::path(env("HOME")) / ".cache" / "huggingface" / "hub";
  }
  o.offline = is_truthy(env("HF_HUB_OFFLINE"));
  return o;
}

std::optional<RepoId> parse_repo_id(std::string_view spec) {
  RepoId r;
  const size_t at = spec.find('@');
  if (at != std::string_view::npos) {
    r.revision = std::string(spec.substr(at + 1));
    spec = spec.substr(0, at);
    if (!valid_revision(r.revision)) return std::nullopt;
  }
  const size_t slash = spec.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  r.org = std::string(spec.substr(0, slash));
  r.name = std::string(spec.substr(slash + 1));
  if (!valid_name_part(r.org) || !valid_name_part(r.name)) return std::nullopt;
  return r;
}

fs::path hub_repo_dir(const HubOptions& options, const RepoId& repo) {
  return options.cache_dir / ("models--" + repo.org + "--" + repo.name);
}

std::optional<fs::path> find_cached_snapshot(const HubOptions& options, const RepoId& repo) {
  const fs::path dir = hub_repo_dir(options, repo);
  std::string hash;
  if (is_commit_hash(repo.revision)) {
    hash = repo.revision;
  } else {
    std::ifstream in(dir / "refs" / repo.revision);
    if (!in) return std::nullopt;
    std::getline(in, hash);
    while (!hash.empty() && std::isspace(static_cast<unsigned char>(hash.back()))) hash.pop_back();
    if (!is_commit_hash(hash)) return std::nullopt;
  }
  const fs::path snap = dir / "snapshots" / hash;
  std::error_code ec;
  if (!fs::is_directory(snap, ec)) return std::nullopt;
  return snap;
}

std::vector<std::string> missing_model_files(const fs::path& snapshot) {
  std::vector<std::string> missing;
  std::error_code ec;
  // fs::exists follows symlinks: a snapshot link to a deleted blob counts as missing.
  if (!fs::exists(snapshot / "config.json", ec)) missing.push_back("config.json");
  const fs::path index = snapshot / "model.safetensors.index.json";
  if (fs::exists(index, ec)) {
    try {
      auto j = detail::read_json_file(index, "model.safetensors.index.json");
      std::vector<std::string> files;
      if (j.is_object() && j.contains("weight_map") && j["weight_map"].is_object()) {
        for (const auto& [t, f] : j["weight_map"].items()) {
          if (f.is_string()) files.push_back(f.get<std::string>());
        }
      }
      std::sort(files.begin(), files.end());
      files.erase(std::unique(files.begin(), files.end()), files.end());
      for (const auto& f : files) {
        if (!detail::is_safe_relative_path(f) || !fs::exists(snapshot / f, ec)) {
          missing.push_back(f);
        }
      }
    } catch (const Error&) {
      missing.push_back("model.safetensors.index.json");
    }
    return missing;
  }
  bool any = false;
  for (const auto& e : fs::directory_iterator(snapshot, ec)) {
    const std::string n = e.path().filename().string();
    if (ends_with(n, ".safetensors") && fs::exists(e.path(), ec)) any = true;
  }
  if (!any) missing.push_back("*.safetensors");
  return missing;
}

bool is_wanted_hub_file(std::string_view name) {
  const size_t slash = name.rfind('/');
  const std::string_view base = slash == std::string_view::npos ? name : name.substr(slash + 1);
  if (base.empty() || base.front() == '.') return false;
  if (ends_with(base, ".safetensors")) {
    // Only top-level weights; consolidated.* duplicate them in another naming scheme.
    return slash == std::string_view::npos && base.substr(0, 12) != "consolidated";
  }
  return ends_with(base, ".json") || ends_with(base, ".jinja") || ends_with(base, ".txt") ||
         ends_with(base, ".tiktoken") || ends_with(base, ".model");
}

fs::path resolve_model(std::string_view spec) {
  return resolve_model(spec, HubOptions::from_env());
}

fs::path resolve_model(std::string_view spec, const HubOptions& options) {
  std::error_code ec;
  const fs::path local{std::string(spec)};
  if (!spec.empty() && fs::is_directory(local, ec)) return local;
  auto repo = parse_repo_id(spec);
  if (!repo) {
    throw InvalidArgument("'" + detail::printable(spec) +
                          "' is neither a model folder nor a Hugging Face repo id "
                          "(org/name[@revision])");
  }
  const std::string shown = repo->id() + (repo->revision == "main" ? "" : "@" + repo->revision);

  if (auto snap = find_cached_snapshot(options, *repo)) {
    if (missing_model_files(*snap).empty()) return *snap;
    if (options.offline) {
      throw IoError("offline mode (HF_HUB_OFFLINE=1): '" + shown +
                    "' is only partly in the cache; missing: " + join(missing_model_files(*snap)));
    }
  } else if (options.offline) {
    throw IoError("offline mode (HF_HUB_OFFLINE=1): '" + shown + "' is not in the cache");
  }

  const detail::HubListing listing = detail::hub_list_files(options, *repo);
  std::vector<std::string> wanted;
  for (const std::string& f : listing.files) {
    // Every name is checked, wanted or not: a listing with such names is not trusted.
    if (!detail::is_safe_relative_path(f)) {
      throw FormatError("the hub listing of '" + shown + "' has an unsafe file name '" +
                        detail::printable(f) + "'; refusing to download");
    }
    if (is_wanted_hub_file(f)) wanted.push_back(f);
  }
  std::stable_sort(wanted.begin(), wanted.end(), [](const std::string& a, const std::string& b) {
    return download_rank(a) < download_rank(b);
  });

  const fs::path dir = hub_repo_dir(options, *repo);
  const fs::path snap = dir / "snapshots" / listing.sha;
  fs::create_directories(snap, ec);
  if (ec) throw IoError("cannot create the cache folder '" + snap.string() + "': " + ec.message());
  for (const std::string& f : wanted) {
    if (fs::exists(snap / f, ec)) continue;
    detail::hub_download_file(options, *repo, listing.sha, f, snap / f, dir / "blobs");
  }
  if (repo->revision != listing.sha) {
    const fs::path ref = dir / "refs" / repo->revision;
    fs::create_directories(ref.parent_path(), ec);
    write_file_atomic(ref, listing.sha);
  }
  if (auto missing = missing_model_files(snap); !missing.empty()) {
    throw FormatError("'" + shown + "' is not a model repo: it lacks " + join(missing));
  }
  return snap;
}

}  // namespace lmx::io
