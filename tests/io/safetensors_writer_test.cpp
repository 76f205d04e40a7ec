#include "lmx/io/safetensors_writer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/io/safetensors.h"
#include "tests/io/io_test_util.h"

namespace lmx::io {
namespace {

using testing::read_file;
using testing::TempDir;
using testing::write_file;

TEST(SafetensorsWriter, RoundTripsDtypesShapesAndMetadata) {
  TempDir dir;
  std::vector<float> a = {1.f, 2.f, 3.f, -4.5f, 5.f, 6.f};
  std::vector<uint16_t> h = {0x3c00, 0xc000, 0x7bff};
  std::vector<int64_t> l = {-1, 1LL << 40};
  std::vector<uint8_t> b = {1, 2, 3, 4, 5};
  std::vector<uint32_t> u = {0xdeadbeef};
  SafetensorsWriter w;
  w.add("a", Dtype::f32, {2, 3}, a.data(), a.size() * 4);
  w.add("h", Dtype::f16, {3}, h.data(), h.size() * 2);
  w.add("l", Dtype::i64, {2}, l.data(), l.size() * 8);
  w.add("b", Dtype::u8, {5}, b.data(), b.size());
  std::vector<std::byte> owned(4);
  std::memcpy(owned.data(), u.data(), 4);
  w.add("u", Dtype::u32, {1, 1}, std::move(owned));
  w.add("empty", Dtype::bf16, {0, 4}, nullptr, 0);
  w.set_metadata("format", "pt");
  w.set_metadata("lmx", "1");
  EXPECT_EQ(w.size(), 6u);
  const auto path = dir / "out.safetensors";
  w.write(path);

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f.header_size() % 8, 0u);
  EXPECT_EQ(f.metadata().size(), 2u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  ASSERT_EQ(f.size(), 6u);
  for (const TensorInfo& t : f.tensors()) {
    EXPECT_TRUE(t.aligned) << t.name;
    EXPECT_EQ(t.file_offset % dtype_size(t.dtype), 0u) << t.name;
  }
  EXPECT_EQ(f.at("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(f.at("a").data, a.data(), 24), 0);
  EXPECT_EQ(f.at("h").dtype, Dtype::f16);
  EXPECT_EQ(std::memcmp(f.at("h").data, h.data(), 6), 0);
  EXPECT_EQ(std::memcmp(f.at("l").data, l.data(), 16), 0);
  EXPECT_EQ(std::memcmp(f.at("b").data, b.data(), 5), 0);
  EXPECT_EQ(std::memcmp(f.at("u").data, u.data(), 4), 0);
  EXPECT_EQ(f.at("u").shape, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(f.at("empty").nbytes, 0u);
  EXPECT_EQ(f.at("empty").dtype, Dtype::bf16);
  // Largest element size first, then by name.
  EXPECT_EQ(f.tensors().front().name, "l");
  EXPECT_EQ(f.tensors().back().name, "b");
}

TEST(SafetensorsWriter, HeaderIsPlainSpecJson) {
  // Read the output by hand, per the spec, without our reader.
  TempDir dir;
  std::vector<int32_t> v = {1, 2, 3};
  SafetensorsWriter w;
  w.add("x", Dtype::i32, {3}, v.data(), 12);
  w.write(dir / "x.safetensors");
  const std::string bytes = read_file(dir / "x.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  ASSERT_EQ(bytes.size(), 8 + n + 12);
  auto j = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(j["x"]["dtype"], "I32");
  EXPECT_EQ(j["x"]["shape"], nlohmann::json::array({3}));
  EXPECT_EQ(j["x"]["data_offsets"], nlohmann::json::array({0, 12}));
  EXPECT_FALSE(j.contains("__metadata__"));
  EXPECT_EQ(std::memcmp(bytes.data() + 8 + n, v.data(), 12), 0);
}

TEST(SafetensorsWriter, ReplacesAtomicallyAndLeavesNoTempFiles) {
  TempDir dir;
  const auto path = dir / "m.safetensors";
  write_file(path, "old content");
  std::vector<float> a = {1.f};
  SafetensorsWriter w;
  w.add("a", Dtype::f32, {1}, a.data(), 4);
  w.write(path);
  EXPECT_EQ(SafetensorsFile::open(path).size(), 1u);
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1);
  EXPECT_THROW(w.write(dir / "no-such-folder" / "m.safetensors"), IoError);
}

TEST(SafetensorsWriter, RejectsBadTensors) {
  std::vector<float> a = {1.f, 2.f};
  SafetensorsWriter w;
  w.add("a", Dtype::f32, {2}, a.data(), 8);
  EXPECT_THROW(w.add("a", Dtype::f32, {2}, a.data(), 8), InvalidArgument);
  EXPECT_THROW(w.add("b", Dtype::f32, {3}, a.data(), 8), InvalidArgument);
  EXPECT_THROW(w.add("c", Dtype::f32, {-2}, a.data(), 8), InvalidArgument);
  EXPECT_THROW(w.add("__metadata__", Dtype::f32, {2}, a.data(), 8), InvalidArgument);
  EXPECT_THROW(w.add("d", Dtype::f32, {2}, nullptr, 8), InvalidArgument);
  EXPECT_EQ(w.size(), 1u);
}

}  // namespace
}  // namespace lmx::io
