#include <curl/curl.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "lmx/base/error.h"
#include "lmx/base/json_nesting.h"
#include "lmx/io/detail.h"
#include "lmx/io/hub_http.h"

namespace lmx::io::detail {
namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxListingBytes = size_t{64} << 20;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlPtr = std::unique_ptr<CURL, CurlDeleter>;
using HeaderList = std::unique_ptr<curl_slist, CurlDeleter>;

std::string escape(CURL* c, const std::string& s) {
  char* e = curl_easy_escape(c, s.c_str(), static_cast<int>(s.size()));
  std::string out = e != nullptr ? e : "";
  curl_free(e);
  return out;
}

// Escapes each '/'-separated component on its own.
std::string escape_path(CURL* c, const std::string& path) {
  std::string out;
  size_t start = 0;
  while (true) {
    const size_t slash = path.find('/', start);
    out += escape(
        c, path.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) return out;
    out += '/';
    start = slash + 1;
  }
}

// Where a response body goes: a string (listings, error bodies) or a file.
struct Sink {
  CURL* curl = nullptr;
  std::string* text = nullptr;
  FILE* file = nullptr;
  long status = 0;
  std::string error_body;  // body of a non-2xx answer, kept short
  bool truncate_on_200 = false;
  bool failed_write = false;
  curl_off_t written = 0;
  int responses = 0;  // status lines seen (redirects add one each)
  std::string etag;   // X-Linked-Etag, else ETag, of the first response
  bool linked_etag = false;
};

std::string trim(std::string_view v) {
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.remove_prefix(1);
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.remove_suffix(1);
  return std::string(v);
}

bool iequals_prefix(std::string_view line, std::string_view name) {
  if (line.size() < name.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(line[i])) != name[i]) return false;
  }
  return true;
}

// The hub's first answer (before any redirect to a CDN) names the content.
size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  const size_t len = size * n;
  const std::string_view line(data, len);
  if (line.substr(0, 5) == "HTTP/") {
    ++s->responses;
  } else if (s->responses == 1) {
    if (iequals_prefix(line, "x-linked-etag:")) {
      s->etag = trim(line.substr(14));
      s->linked_etag = true;
    } else if (!s->linked_etag && iequals_prefix(line, "etag:")) {
      s->etag = trim(line.substr(5));
    }
  }
  return len;
}

// huggingface_hub's blob name: the etag without a weak marker and quotes; anything that is
// not a plain file name is not used.
std::string blob_name(std::string etag) {
  if (etag.substr(0, 2) == "W/") etag.erase(0, 2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  const bool ok =
      !etag.empty() && etag.size() <= 128 && etag.front() != '.' &&
      std::all_of(etag.begin(), etag.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
      });
  return ok ? etag : std::string();
}

// An exclusive flock held for the object's lifetime. Lock files are left in place
// (removing them would race with waiters).
class FileLock {
 public:
  FileLock(const fs::path& path, const std::string& shown) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw IoError("cannot create a lock file in the cache for '" + shown + "'");
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) {
        ::close(fd_);
        throw IoError("cannot lock the cache entry of '" + shown + "'");
      }
    }
  }
  ~FileLock() { ::close(fd_); }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

// Moves a finished download into place: blob + relative symlink when the hub named the
// content, else a plain file.
void store(const fs::path& partial,
           const fs::path& dest,
           const fs::path& blobs_dir,
           const std::string& blob,
           const std::string& shown) {
  std::error_code ec;
  // A dangling symlink left by a deleted blob would block the new entry.
  if (fs::is_symlink(fs::symlink_status(dest, ec))) fs::remove(dest, ec);
  if (!blob.empty()) {
    const fs::path target = blobs_dir / blob;
    fs::create_directories(blobs_dir, ec);
    if (fs::exists(target, ec)) {
      fs::remove(partial, ec);  // same content already cached (another revision)
    } else {
      fs::rename(partial, target, ec);
    }
    if (!ec) {
      fs::create_symlink(fs::relative(target, dest.parent_path(), ec), dest, ec);
      if (!ec) return;
      // No symlinks here: fall back to a copy.
      fs::copy_file(target, dest, ec);
      if (!ec) return;
    }
    throw IoError("cannot store the download of '" + shown + "' in the cache: " + ec.message());
  }
  fs::rename(partial, dest, ec);
  if (ec) {
    throw IoError("cannot move the download of '" + shown + "' into the cache: " + ec.message());
  }
}

size_t on_write(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  const size_t len = size * n;
  if (s->status == 0) curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->status);
  if (s->status < 200 || s->status >= 300) {
    if (s->error_body.size() < 2000) s->error_body.append(data, std::min<size_t>(len, 2000));
    return len;
  }
  if (s->text != nullptr) {
    // A listing is a few KB to a few MB; refuse to buffer without bound.
    if (s->text->size() + len > kMaxListingBytes) return 0;
    s->text->append(data, len);
    return len;
  }
  if (s->truncate_on_200 && s->status == 200) {
    // The server ignored our Range: start the file over.
    s->truncate_on_200 = false;
    if (std::fflush(s->file) != 0 || ::ftruncate(::fileno(s->file), 0) != 0 ||
        std::fseek(s->file, 0, SEEK_SET) != 0) {
      s->failed_write = true;
      return 0;
    }
  }
  if (std::fwrite(data, 1, len, s->file) != len) {
    s->failed_write = true;
    return 0;
  }
  s->written += static_cast<curl_off_t>(len);
  return len;
}

struct Progress {
  std::string label;
  curl_off_t offset = 0;  // bytes already on disk when this request started
  bool drawn = false;
};

int on_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto* p = static_cast<Progress*>(user);
  if (total <= 0) return 0;
  const double done = static_cast<double>(p->offset + now) / 1e6;
  const double all = static_cast<double>(p->offset + total) / 1e6;
  std::fprintf(stderr, "\r%-40.40s %9.1f / %.1f MB %3d%%", p->label.c_str(), done, all,
               static_cast<int>(100.0 * done / all));
  p->drawn = true;
  return 0;
}

CurlPtr make_handle(const HubOptions& options, HeaderList& headers) {
  global_init();
  CurlPtr c(curl_easy_init());
  if (!c) throw IoError("cannot initialise libcurl");
  curl_easy_setopt(c.get(), CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c.get(), CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT, 30L);
  // Abort a stalled transfer: under 1 byte/s for a minute.
  curl_easy_setopt(c.get(), CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c.get(), CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c.get(), CURLOPT_USERAGENT, "lmx/0.1");
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.get(), CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c.get(), CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, on_write);
  // libcurl does not forward a custom Authorization header to another host on redirect.
  if (!options.token.empty()) {
    headers.reset(
        curl_slist_append(headers.release(), ("Authorization: Bearer " + options.token).c_str()));
  }
  if (headers) curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers.get());
  return c;
}

[[noreturn]] void throw_http(long status,
                             const HubOptions& options,
                             const std::string& what,
                             const std::string& shown) {
  if (status == 401 || status == 403) {
    throw IoError(what + ": access denied (HTTP " + std::to_string(status) + ") for '" + shown +
                  "'; " +
                  (options.token.empty() ? "the repo may be private or gated: set HF_TOKEN"
                                         : "HF_TOKEN was rejected or has no access to this repo"));
  }
  if (status == 404) {
    throw IoError(what + ": '" + shown + "' not found on " + options.endpoint + " (HTTP 404)");
  }
  throw IoError(what + ": HTTP " + std::to_string(status) + " from " + options.endpoint + " for '" +
                shown + "'");
}

}  // namespace

HubListing hub_list_files(const HubOptions& options, const RepoId& repo) {
  HeaderList headers;
  CurlPtr c = make_handle(options, headers);
  const std::string url = options.endpoint + "/api/models/" + escape(c.get(), repo.org) + "/" +
                          escape(c.get(), repo.name) + "/revision/" +
                          escape(c.get(), repo.revision);
  std::string body;
  Sink sink;
  sink.curl = c.get();
  sink.text = &body;
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT, 120L);
  const std::string shown = repo.id() + "@" + repo.revision;
  const CURLcode rc = curl_easy_perform(c.get());
  if (rc != CURLE_OK) {
    throw IoError("listing '" + shown + "' on " + options.endpoint + " failed: " +
                  curl_easy_strerror(rc) + " (set HF_HUB_OFFLINE=1 to use only the local cache)");
  }
  long status = 0;
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status >= 300) throw_http(status, options, "listing the repo", shown);

  HubListing out;
  check_json_nesting(body, "the hub's listing of '" + shown + "'");
  try {
    auto j = nlohmann::json::parse(body);
    out.sha = j.at("sha").get<std::string>();
    for (const auto& s : j.at("siblings"))
      out.files.push_back(s.at("rfilename").get<std::string>());
  } catch (const nlohmann::json::exception& e) {
    throw FormatError("the hub's listing of '" + shown + "' is malformed: " + e.what());
  }
  const bool hex =
      out.sha.size() == 40 && out.sha.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (!hex) {
    throw FormatError("the hub's listing of '" + shown + "' has an invalid commit sha '" +
                      printable(out.sha, 60) + "'");
  }
  return out;
}

void hub_download_file(const HubOptions& options,
                       const RepoId& repo,
                       const std::string& sha,
                       const std::string& file,
                       const fs::path& dest,
                       const fs::path& blobs_dir) {
  const std::string shown = repo.id() + "/" + file;
  std::error_code ec;
  fs::create_directories(dest.parent_path(), ec);
  fs::path partial = dest;
  partial += ".incomplete";
  const bool draw = options.progress && ::isatty(STDERR_FILENO) == 1;

  // One downloader per file across processes (lmx serve + lmx chat, say): the others wait,
  // then find the file in place.
  std::string lock_name = file;
  std::replace(lock_name.begin(), lock_name.end(), '/', '~');
  FileLock lock(blobs_dir.parent_path() / ".locks" / sha / (lock_name + ".lock"), shown);
  if (fs::exists(dest, ec)) return;

  std::string last_error;
  for (int attempt = 0; attempt < std::max(1, options.max_attempts); ++attempt) {
    HeaderList headers;
    curl_off_t have = 0;
    if (fs::exists(partial, ec)) have = static_cast<curl_off_t>(fs::file_size(partial, ec));
    if (ec) have = 0;
    CurlPtr c = make_handle(options, headers);
    const std::string url = options.endpoint + "/" + escape(c.get(), repo.org) + "/" +
                            escape(c.get(), repo.name) + "/resolve/" + sha + "/" +
                            escape_path(c.get(), file);
    std::unique_ptr<FILE, int (*)(FILE*)> out(std::fopen(partial.c_str(), have > 0 ? "ab" : "wb"),
                                              &std::fclose);
    if (!out) throw IoError("cannot write to the cache for '" + shown + "'");
    Sink sink;
    sink.curl = c.get();
    sink.file = out.get();
    sink.truncate_on_200 = have > 0;
    Progress progress{file, have, false};
    curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c.get(), CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c.get(), CURLOPT_HEADERDATA, &sink);
    if (have > 0) curl_easy_setopt(c.get(), CURLOPT_RESUME_FROM_LARGE, have);
    if (draw) {
      curl_easy_setopt(c.get(), CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(c.get(), CURLOPT_XFERINFOFUNCTION, on_progress);
      curl_easy_setopt(c.get(), CURLOPT_XFERINFODATA, &progress);
    }
    const CURLcode rc = curl_easy_perform(c.get());
    if (progress.drawn) std::fputc('\n', stderr);
    long status = 0;
    curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
    const int closed = std::fclose(out.release());
    if (sink.failed_write || closed != 0) {
      throw IoError("cannot write to the cache for '" + shown + "' (disk full?)");
    }
    if (status == 416) {
      // Our partial file does not fit the remote one (changed, or longer): start over.
      fs::remove(partial, ec);
      last_error = "HTTP 416 on resume";
      continue;
    }
    if (status >= 300 && !(rc == CURLE_OK && status < 400)) {
      if (status >= 400 && status < 500) {
        if (fs::exists(partial, ec) && fs::file_size(partial, ec) == 0) fs::remove(partial, ec);
        throw_http(status, options, "downloading", shown);
      }
      last_error = "HTTP " + std::to_string(status);
      // Server trouble: give it a moment before the next attempt.
      std::this_thread::sleep_for(std::chrono::milliseconds(500 * (attempt + 1)));
      continue;
    }
    if (rc != CURLE_OK) {
      // Interrupted (connection cut, stalled): keep the partial file and resume.
      last_error = curl_easy_strerror(rc);
      continue;
    }
    store(partial, dest, blobs_dir, blob_name(sink.etag), shown);
    return;
  }
  throw IoError("downloading '" + shown + "' from " + options.endpoint + " failed after " +
                std::to_string(std::max(1, options.max_attempts)) + " attempts (" + last_error +
                "); run again to resume");
}

}  // namespace lmx::io::detail
