#include "lmx/io/hub.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/io/model_folder.h"
#include "lmx/io/safetensors_writer.h"
#include "tests/io/io_test_util.h"

extern char** environ;

namespace lmx::io {
namespace {

namespace fs = std::filesystem;
using testing::read_file;
using testing::TempDir;
using testing::write_file;

const std::string kSha = "0123456789abcdef0123456789abcdef01234567";

// tests/io/fake_hub_server.py as a real process on 127.0.0.1, killed at scope exit.
class FakeHub {
 public:
  FakeHub() {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    const std::string script = std::string(LMX_SOURCE_DIR) + "/tests/io/fake_hub_server.py";
    const std::string root_s = root_.path().string();
    std::vector<char*> argv = {const_cast<char*>("python3"), const_cast<char*>(script.c_str()),
                               const_cast<char*>("--root"), const_cast<char*>(root_s.c_str()),
                               nullptr};
    const int rc = posix_spawnp(&pid_, "python3", &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      pid_ = -1;
      throw std::runtime_error("cannot start python3");
    }
    FILE* out = ::fdopen(fds[0], "r");
    char line[64] = {0};
    if (out == nullptr || std::fgets(line, sizeof(line), out) == nullptr) {
      if (out != nullptr) std::fclose(out);
      stop();
      throw std::runtime_error("fake hub did not start");
    }
    std::fclose(out);
    port_ = std::atoi(line + 5);
  }
  ~FakeHub() { stop(); }
  FakeHub(const FakeHub&) = delete;
  FakeHub& operator=(const FakeHub&) = delete;

  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  fs::path repo(const std::string& id) const { return root_.path() / id; }
  std::vector<std::string> log() const {
    std::vector<std::string> lines;
    std::string text = read_file(root_.path() / ".log"), cur;
    for (char c : text) {
      if (c == '\n') {
        lines.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    return lines;
  }
  int count(const std::string& needle) const {
    int n = 0;
    for (const auto& l : log()) n += l.find(needle) != std::string::npos;
    return n;
  }

 private:
  TempDir root_;
  pid_t pid_ = -1;
  int port_ = 0;
};

bool have_python() {
  if (std::system("python3 -c 'import http.server' >/dev/null 2>&1") == 0) return true;
  if (std::getenv("CI") != nullptr) ADD_FAILURE() << "python3 is needed for the hub tests";
  return false;
}

// A tiny but real model repo: weights (big enough to cut), configs, tokenizer files, and
// files that must not be fetched.
void make_repo(const fs::path& dir, size_t n_floats = 4096) {
  write_file(dir / "config.json", R"({"model_type":"llama","hidden_size":8})");
  write_file(dir / "generation_config.json", R"({"eos_token_id":2})");
  write_file(dir / "tokenizer.json", R"({"model":{"type":"BPE"}})");
  write_file(dir / "tokenizer_config.json", R"({"bos_token":"<s>"})");
  write_file(dir / "chat_template.jinja", "{{ messages }}");
  write_file(dir / "1_Pooling" / "config.json", R"({"pooling_mode_mean_tokens":true})");
  write_file(dir / "README.md", "# not fetched");
  write_file(dir / "pytorch_model.bin", "not fetched");
  write_file(dir / "original" / "model.safetensors", "not fetched");
  write_file(dir / ".sha", kSha);
  std::vector<float> w(n_floats);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i) * 0.5f;
  SafetensorsWriter sw;
  sw.add("model.embed_tokens.weight", Dtype::f32, {static_cast<int64_t>(n_floats)}, w.data(),
         w.size() * 4);
  sw.write(dir / "model.safetensors");
}

struct HubFixture : ::testing::Test {
  void SetUp() override {
    if (!have_python()) GTEST_SKIP() << "python3 not found";
    hub = std::make_unique<FakeHub>();
    options.endpoint = hub->endpoint();
    options.cache_dir = cache.path();
    options.progress = false;
  }
  std::unique_ptr<FakeHub> hub;
  TempDir cache;
  HubOptions options;
};

template <typename E, typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<wrong exception> ") + e.what();
  }
  return "<no exception>";
}

TEST(Hub, ParsesRepoIds) {
  auto r = parse_repo_id("mlx-community/Llama-3.2-1B-Instruct-4bit");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->org, "mlx-community");
  EXPECT_EQ(r->name, "Llama-3.2-1B-Instruct-4bit");
  EXPECT_EQ(r->revision, "main");
  r = parse_repo_id("org/name@v1.0");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->revision, "v1.0");
  EXPECT_TRUE(parse_repo_id("org/name@refs/pr/1"));
  for (const char* bad :
       {"", "name", "a/b/c", "../x", "org/..", "org/.hidden", "/abs/x", "org/name@../../x",
        "org/name@", "org/na me", "org//x", "a--b/c", "org/name@/x", "org\\x/y"}) {
    EXPECT_FALSE(parse_repo_id(bad)) << bad;
  }
}

TEST(Hub, OptionsFromEnvironment) {
  auto save = [](const char* n) {
    const char* v = std::getenv(n);
    return std::make_pair(std::string(n), v ? std::optional<std::string>(v) : std::nullopt);
  };
  std::vector<std::pair<std::string, std::optional<std::string>>> saved;
  for (const char* n : {"HF_HUB_CACHE", "HF_HOME", "HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE",
                        "XDG_CACHE_HOME", "HOME"}) {
    saved.push_back(save(n));
  }
  ::unsetenv("HF_HUB_CACHE");
  ::unsetenv("HF_HOME");
  ::unsetenv("XDG_CACHE_HOME");
  ::unsetenv("HF_ENDPOINT");
  ::unsetenv("HF_TOKEN");
  ::unsetenv("HF_HUB_OFFLINE");
  ::setenv("HOME", "/home/u", 1);
  auto o = HubOptions::from_env();
  EXPECT_EQ(o.cache_dir, fs::path("/home/u/.cache/huggingface/hub"));
  EXPECT_EQ(o.endpoint, "https://huggingface.co");
  EXPECT_FALSE(o.offline);
  ::setenv("HF_HOME", "/hf", 1);
  EXPECT_EQ(HubOptions::from_env().cache_dir, fs::path("/hf/hub"));
  ::setenv("HF_HUB_CACHE", "/cache", 1);
  ::setenv("HF_ENDPOINT", "http://127.0.0.1:9/", 1);
  ::setenv("HF_TOKEN", "hf_x", 1);
  ::setenv("HF_HUB_OFFLINE", "1", 1);
  o = HubOptions::from_env();
  EXPECT_EQ(o.cache_dir, fs::path("/cache"));
  EXPECT_EQ(o.endpoint, "http://127.0.0.1:9");
  EXPECT_EQ(o.token, "hf_x");
  EXPECT_TRUE(o.offline);
  for (const auto& [n, v] : saved) {
    if (v) {
      ::setenv(n.c_str(), v->c_str(), 1);
    } else {
      ::unsetenv(n.c_str());
    }
  }
}

TEST(Hub, WantedFiles) {
  for (const char* yes : {"model.safetensors", "model-00001-of-00002.safetensors", "config.json",
                          "tokenizer.json", "chat_template.jinja", "merges.txt", "vocab.txt",
                          "tokenizer.model", "qwen.tiktoken", "1_Pooling/config.json"}) {
    EXPECT_TRUE(is_wanted_hub_file(yes)) << yes;
  }
  for (const char* no :
       {"pytorch_model.bin", "README.md", ".gitattributes", "consolidated.safetensors",
        "original/model.safetensors", "model.gguf", "onnx/model.onnx"}) {
    EXPECT_FALSE(is_wanted_hub_file(no)) << no;
  }
}

TEST(Hub, LocalFolderIsReturnedAsIs) {
  TempDir dir;
  HubOptions o;
  o.offline = true;
  EXPECT_EQ(resolve_model(dir.path().string(), o), dir.path());
  EXPECT_THROW(resolve_model("no/such/folder/x", o), InvalidArgument);
}

TEST_F(HubFixture, FreshDownloadThenCacheHitWithoutNetwork) {
  make_repo(hub->repo("org/tiny"));
  const fs::path snap = resolve_model("org/tiny", options);
  EXPECT_EQ(snap, cache.path() / "models--org--tiny" / "snapshots" / kSha);
  EXPECT_EQ(read_file(cache.path() / "models--org--tiny" / "refs" / "main"), kSha);
  for (const char* f :
       {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "chat_template.jinja", "model.safetensors", "1_Pooling/config.json"}) {
    EXPECT_EQ(read_file(snap / f), read_file(hub->repo("org/tiny") / f)) << f;
  }
  for (const char* f : {"README.md", "pytorch_model.bin", "original/model.safetensors"}) {
    EXPECT_FALSE(fs::exists(snap / f)) << f;
  }
  auto folder = ModelFolder::open(snap);
  EXPECT_EQ(folder.weights().size(), 1u);
  EXPECT_EQ(hub->count("/api/models/org/tiny/revision/main"), 1);

  // Second resolve: no network at all (the server is gone).
  hub->stop();
  EXPECT_EQ(resolve_model("org/tiny", options), snap);
  options.offline = true;
  EXPECT_EQ(resolve_model("org/tiny", options), snap);
  EXPECT_EQ(resolve_model("org/tiny@" + kSha, options), snap);
}

TEST_F(HubFixture, DownloadsUseTheBlobLayoutOfHuggingfaceHub) {
  make_repo(hub->repo("org/tiny"));
  const fs::path snap = resolve_model("org/tiny", options);
  const fs::path blobs = cache.path() / "models--org--tiny" / "blobs";
  // Entries are relative symlinks into blobs/ named by the hub's etag.
  ASSERT_TRUE(fs::is_symlink(snap / "model.safetensors"));
  const fs::path link = fs::read_symlink(snap / "model.safetensors");
  EXPECT_TRUE(link.is_relative()) << link;
  EXPECT_EQ(link.parent_path(), fs::path("../../blobs"));
  EXPECT_EQ(link.filename().string().size(), 64u);  // sha256 from X-Linked-Etag
  EXPECT_EQ(fs::read_symlink(snap / "config.json").filename().string().size(), 40u);  // sha1
  EXPECT_EQ(fs::read_symlink(snap / "1_Pooling" / "config.json").parent_path(),
            fs::path("../../../blobs"));
  EXPECT_EQ(read_file(snap / "model.safetensors"),
            read_file(hub->repo("org/tiny") / "model.safetensors"));
  size_t n_blobs = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(blobs)) ++n_blobs;
  EXPECT_EQ(n_blobs, 7u);  // one per fetched file

  // A new commit with the same content reuses the blobs.
  write_file(hub->repo("org/tiny") / ".sha", std::string(40, 'b'));
  const fs::path snap2 = resolve_model("org/tiny@v2", options);
  EXPECT_EQ(snap2.filename(), std::string(40, 'b'));
  EXPECT_EQ(fs::read_symlink(snap2 / "model.safetensors"), link);
  n_blobs = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(blobs)) ++n_blobs;
  EXPECT_EQ(n_blobs, 7u);

  // Without etags: plain files.
  make_repo(hub->repo("org/plain"));
  write_file(hub->repo("org/plain") / ".no_etag", "1");
  const fs::path snap3 = resolve_model("org/plain", options);
  EXPECT_FALSE(fs::is_symlink(snap3 / "model.safetensors"));
  EXPECT_EQ(read_file(snap3 / "model.safetensors"),
            read_file(hub->repo("org/plain") / "model.safetensors"));
}

TEST_F(HubFixture, ConcurrentResolvesShareOneDownload) {
  make_repo(hub->repo("org/tiny"), 1 << 18);
  std::vector<fs::path> got(4);
  std::vector<std::string> errors(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < got.size(); ++i) {
    threads.emplace_back([&, i] {
      try {
        got[i] = resolve_model("org/tiny", options);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  const std::string expected = read_file(hub->repo("org/tiny") / "model.safetensors");
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(errors[i], "");
    EXPECT_EQ(got[i], got[0]);
  }
  EXPECT_EQ(read_file(got[0] / "model.safetensors"), expected);
  // Each file was fetched once: the other resolves waited for the lock.
  EXPECT_EQ(hub->count("/resolve/" + kSha + "/model.safetensors"), 1);
  EXPECT_EQ(hub->count("/resolve/" + kSha + "/config.json"), 1);
}

TEST_F(HubFixture, RevisionsAreRecordedAsRefs) {
  make_repo(hub->repo("org/tiny"));
  const fs::path snap = resolve_model("org/tiny@v1.0", options);
  EXPECT_EQ(read_file(cache.path() / "models--org--tiny" / "refs" / "v1.0"), kSha);
  EXPECT_EQ(hub->count("/revision/v1.0"), 1);
  EXPECT_EQ(snap.filename(), kSha);
}

TEST_F(HubFixture, OfflineModeNeverTouchesTheNetwork) {
  make_repo(hub->repo("org/tiny"));
  options.offline = true;
  std::string msg = error_of<IoError>([&] { (void)resolve_model("org/tiny", options); });
  EXPECT_NE(msg.find("offline"), std::string::npos) << msg;
  EXPECT_NE(msg.find("org/tiny"), std::string::npos) << msg;
  EXPECT_TRUE(hub->log().empty());

  options.offline = false;
  const fs::path snap = resolve_model("org/tiny", options);
  fs::remove(snap / "model.safetensors");
  options.offline = true;
  msg = error_of<IoError>([&] { (void)resolve_model("org/tiny", options); });
  EXPECT_NE(msg.find("partly"), std::string::npos) << msg;
  EXPECT_NE(msg.find("safetensors"), std::string::npos) << msg;

  // Online again, only the missing file is fetched.
  options.offline = false;
  EXPECT_EQ(resolve_model("org/tiny", options), snap);
  EXPECT_EQ(hub->count("/resolve/" + kSha + "/model.safetensors"), 2);
  EXPECT_EQ(hub->count("/resolve/" + kSha + "/config.json"), 1);
}

TEST_F(HubFixture, InterruptedDownloadResumes) {
  make_repo(hub->repo("org/tiny"));
  write_file(hub->repo("org/tiny") / ".cut", R"({"model.safetensors": 5000})");
  const fs::path snap = resolve_model("org/tiny", options);
  EXPECT_EQ(read_file(snap / "model.safetensors"),
            read_file(hub->repo("org/tiny") / "model.safetensors"));
  EXPECT_EQ(hub->count("model.safetensors bytes=5000-"), 1);
  EXPECT_FALSE(fs::exists(snap / "model.safetensors.incomplete"));
}

TEST_F(HubFixture, ServerErrorsAreRetriedThenReported) {
  make_repo(hub->repo("org/tiny"));
  write_file(hub->repo("org/tiny") / ".errors", R"({"tokenizer.json": [503, 1]})");
  const fs::path snap = resolve_model("org/tiny", options);
  EXPECT_EQ(read_file(snap / "tokenizer.json"),
            read_file(hub->repo("org/tiny") / "tokenizer.json"));
  EXPECT_EQ(hub->count("/tokenizer.json"), 2);

  make_repo(hub->repo("org/down"));
  write_file(hub->repo("org/down") / ".errors", R"({"config.json": [500, 100]})");
  options.max_attempts = 2;
  const std::string msg = error_of<IoError>([&] { (void)resolve_model("org/down", options); });
  EXPECT_NE(msg.find("org/down/config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("HTTP 500"), std::string::npos) << msg;
  EXPECT_NE(msg.find("2 attempts"), std::string::npos) << msg;
}

TEST_F(HubFixture, PartialFileFromAnEarlierRunResumes) {
  make_repo(hub->repo("org/tiny"));
  const std::string full = read_file(hub->repo("org/tiny") / "model.safetensors");
  const fs::path snap = cache.path() / "models--org--tiny" / "snapshots" / kSha;
  write_file(snap / "model.safetensors.incomplete", full.substr(0, 1234));
  EXPECT_EQ(resolve_model("org/tiny", options), snap);
  EXPECT_EQ(read_file(snap / "model.safetensors"), full);
  EXPECT_EQ(hub->count("model.safetensors bytes=1234-"), 1);
  EXPECT_FALSE(fs::exists(snap / "model.safetensors.incomplete"));
  // A stale partial longer than the file: the server answers 416 and we start over.
  fs::remove(snap / "model.safetensors");
  write_file(snap / "model.safetensors.incomplete", full + "junk");
  EXPECT_EQ(resolve_model("org/tiny", options), snap);
  EXPECT_EQ(read_file(snap / "model.safetensors"), full);
}

TEST_F(HubFixture, MaliciousFileNamesAreRejected) {
  make_repo(hub->repo("org/tiny"));
  for (const char* evil :
       {"../../evil.json", "/tmp/evil.json", "a\\..\\..\\evil.json", "ok/../../evil.json"}) {
    SCOPED_TRACE(evil);
    write_file(hub->repo("org/tiny") / ".extra_siblings", nlohmann::json::array({evil}).dump());
    const std::string msg =
        error_of<FormatError>([&] { (void)resolve_model("org/tiny", options); });
    EXPECT_NE(msg.find("unsafe file name"), std::string::npos) << msg;
    EXPECT_NE(msg.find("org/tiny"), std::string::npos) << msg;
    EXPECT_EQ(msg.find(cache.path().string()), std::string::npos) << msg;
  }
  EXPECT_FALSE(fs::exists(cache.path() / "evil.json"));
  EXPECT_FALSE(fs::exists(cache.path().parent_path() / "evil.json"));
  EXPECT_EQ(hub->count("/resolve/"), 0);
}

TEST_F(HubFixture, NotFoundAndAuthErrorsAreClear) {
  make_repo(hub->repo("org/private"));
  write_file(hub->repo("org/private") / ".token", "hf_secret");
  std::string msg = error_of<IoError>([&] { (void)resolve_model("org/missing", options); });
  EXPECT_NE(msg.find("not found"), std::string::npos) << msg;
  EXPECT_NE(msg.find("org/missing"), std::string::npos) << msg;
  EXPECT_NE(msg.find("404"), std::string::npos) << msg;

  msg = error_of<IoError>([&] { (void)resolve_model("org/private", options); });
  EXPECT_NE(msg.find("401"), std::string::npos) << msg;
  EXPECT_NE(msg.find("HF_TOKEN"), std::string::npos) << msg;
  options.token = "hf_wrong";
  msg = error_of<IoError>([&] { (void)resolve_model("org/private", options); });
  EXPECT_NE(msg.find("403"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("hf_wrong"), std::string::npos) << msg;  // never echo the token
  options.token = "hf_secret";
  const fs::path snap = resolve_model("org/private", options);
  EXPECT_TRUE(fs::exists(snap / "model.safetensors"));

  // A file the listing names but the server does not have.
  make_repo(hub->repo("org/broken"));
  write_file(hub->repo("org/broken") / ".extra_siblings", R"(["tokenizer.model"])");
  msg = error_of<IoError>([&] { (void)resolve_model("org/broken", options); });
  EXPECT_NE(msg.find("org/broken/tokenizer.model"), std::string::npos) << msg;
  EXPECT_NE(msg.find("404"), std::string::npos) << msg;

  // Nothing listening.
  hub->stop();
  msg = error_of<IoError>([&] { (void)resolve_model("org/other", options); });
  EXPECT_NE(msg.find("HF_HUB_OFFLINE"), std::string::npos) << msg;
}

}  // namespace
}  // namespace lmx::io

namespace lmx::io {
namespace {

// The layout huggingface_hub writes: snapshot entries are symlinks into blobs/.
TEST(Hub, ReadsPythonCacheLayoutWithBlobSymlinks) {
  TempDir cache;
  TempDir src;
  make_repo(src.path());
  const fs::path repo = cache.path() / "models--org--py";
  const fs::path snap = repo / "snapshots" / kSha;
  fs::create_directories(repo / "blobs");
  fs::create_directories(snap);
  int i = 0;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"}) {
    const std::string blob = "blob" + std::to_string(i++);
    fs::copy_file(src.path() / f, repo / "blobs" / blob);
    fs::create_symlink(fs::path("../../blobs") / blob, snap / f);
  }
  write_file(repo / "refs" / "main", kSha + "\n");
  HubOptions o;
  o.cache_dir = cache.path();
  o.offline = true;
  o.endpoint = "http://127.0.0.1:1";
  EXPECT_EQ(resolve_model("org/py", o), snap);
  auto folder = ModelFolder::open(resolve_model("org/py", o));
  EXPECT_EQ(folder.model_type(), "llama");
  EXPECT_EQ(folder.weights().size(), 1u);
  // A symlink whose blob is gone counts as missing.
  fs::remove(repo / "blobs" / "blob1");
  const std::string msg = error_of<IoError>([&] { (void)resolve_model("org/py", o); });
  EXPECT_NE(msg.find("safetensors"), std::string::npos) << msg;
}

}  // namespace
}  // namespace lmx::io
