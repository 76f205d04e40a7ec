// Issue 22: replacing files and folders. Only a regular file (or nothing) is replaced;
// a folder is swapped whole, so an error leaves the old content untouched.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "io_test_util.h"
#include "lmx/base/error.h"
#include "lmx/io/atomic_write.h"
#include "lmx/io/safetensors_writer.h"

namespace lmx::io {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::write_file;

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::set<std::string> names(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(AtomicWrite, ReplacesRegularFilesAndCreatesNewOnes) {
  TempDir dir;
  write_file_atomic(dir / "a.txt", "first");
  write_file_atomic(dir / "a.txt", "second");
  EXPECT_EQ(read(dir / "a.txt"), "second");
  EXPECT_EQ(names(dir.path()), std::set<std::string>{"a.txt"});  // no temporaries left
}

TEST(AtomicWrite, RefusesFifosSymlinksAndFolders) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  write_file(dir / "real.txt", "keep me");
  fs::create_symlink(dir / "real.txt", dir / "link");
  fs::create_directory(dir / "folder");
  for (const char* name : {"fifo", "link", "folder"}) {
    const fs::path target = dir / name;
    auto msg = error_of([&] { write_file_atomic(target, "new"); });
    EXPECT_NE(msg.find("refusing to replace '" + target.string() + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;
    // The safetensors writer goes through the same helper.
    SafetensorsWriter w;
    EXPECT_THROW(w.write(target), IoError) << name;
  }
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(dir / "fifo")));
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(dir / "link")));
  EXPECT_EQ(read(dir / "real.txt"), "keep me");
  EXPECT_EQ(names(dir.path()), (std::set<std::string>{"fifo", "folder", "link", "real.txt"}));
}

TEST(AtomicWrite, FolderIsCreatedOrSwappedWhole) {
  TempDir dir;
  const fs::path out = dir / "model";
  write_folder_atomic(out, false, [](const fs::path& s) { write_file(s / "one.txt", "1"); });
  EXPECT_EQ(names(out), std::set<std::string>{"one.txt"});

  // Not empty: refused without replace_non_empty, untouched.
  auto msg = error_of([&] {
    write_folder_atomic(out, false, [](const fs::path& s) { write_file(s / "two.txt", "2"); });
  });
  EXPECT_NE(msg.find("'" + out.string() + "' is not empty"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--force"), std::string::npos) << msg;
  EXPECT_EQ(names(out), std::set<std::string>{"one.txt"});

  // A failure while filling leaves the old folder as it was, and no staging folder.
  EXPECT_THROW(write_folder_atomic(out, true,
                                   [](const fs::path& s) {
                                     write_file(s / "half.txt", "x");
                                     throw IoError("disk full");
                                   }),
               IoError);
  EXPECT_EQ(names(out), std::set<std::string>{"one.txt"});
  EXPECT_EQ(names(dir.path()), std::set<std::string>{"model"});

  // Replacing: only the new files remain (no stale leftovers of the old model).
  write_folder_atomic(out.string() + "/", true, [](const fs::path& s) { write_file(s / "two.txt", "2"); });
  EXPECT_EQ(names(out), std::set<std::string>{"two.txt"});
  EXPECT_EQ(read(out / "two.txt"), "2");
  EXPECT_EQ(names(dir.path()), std::set<std::string>{"model"});

  // An empty folder is fine without replace_non_empty; a file is never replaced.
  fs::create_directory(dir / "empty");
  write_folder_atomic(dir / "empty", false, [](const fs::path& s) { write_file(s / "a", "a"); });
  EXPECT_EQ(names(dir / "empty"), std::set<std::string>{"a"});
  write_file(dir / "file", "f");
  EXPECT_THROW(write_folder_atomic(dir / "file", true, [](const fs::path&) {}), IoError);
  EXPECT_EQ(read(dir / "file"), "f");
}

// A header string that is not UTF-8 (metadata from the caller) is an InvalidArgument naming
// the file, and nothing is written (session_fuzz found nlohmann's type_error escaping).
TEST(AtomicWrite, NonUtf8MetadataIsRefusedBeforeWriting) {
  TempDir dir;
  SafetensorsWriter w;
  w.set_metadata("note", std::string("caf\xe9 \x8d"));
  try {
    w.write(dir / "out.safetensors");
    FAIL() << "no error";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("out.safetensors"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "out.safetensors"));
}

}  // namespace
}  // namespace lmx::io
