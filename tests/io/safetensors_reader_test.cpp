#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/io/mapped_file.h"
#include "lmx/io/safetensors_tensor.h"
#include "lmx/io/safetensors.h"
#include "tests/io/io_test_util.h"

namespace lmx::io {
namespace {

using testing::le64;
using testing::raw_bytes;
using testing::safetensors_bytes;
using testing::TempDir;
using testing::write_file;

TEST(MappedFile, MapsBytesAndEmptyFiles) {
  TempDir dir;
  write_file(dir / "a.bin", "hello");
  write_file(dir / "empty.bin", "");
  auto m = MappedFile::open(dir / "a.bin");
  ASSERT_EQ(m->size(), 5u);
  EXPECT_EQ(std::memcmp(m->data(), "hello", 5), 0);
  m->advise(AccessHint::will_need);
  m->advise(AccessHint::sequential, 3, 100);
  auto e = MappedFile::open(dir / "empty.bin");
  EXPECT_EQ(e->size(), 0u);
  EXPECT_EQ(e->data(), nullptr);
}

// Resident kB of the mapping that holds `p`, from /proc/self/smaps.
long resident_kb(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  while (std::getline(smaps, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find('-') < 17) {
      inside = addr >= lo && addr < hi;
    } else if (inside && line.rfind("Rss:", 0) == 0) {
      return std::stol(line.substr(4));
    }
  }
  return -1;
}

TEST(MappedFile, RangeOwnerReleasesItsWholePagesWhenDropped) {
  TempDir dir;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE)), size = 64 * page;
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>(i * 7 + 3);
  write_file(dir / "w.bin", bytes);
  auto m = MappedFile::open(dir / "w.bin");
  const std::byte* data = m->data();
  auto touch = [&] {
    long sum = 0;
    for (size_t i = 0; i < size; i += page) sum += static_cast<long>(data[i]);
    return sum;
  };
  const long sum = touch();
  const long all_kb = resident_kb(data);
  ASSERT_GE(all_kb, static_cast<long>(size / 1024));
  // A tensor over [100, 100 + 40 pages): pages 1..40 lie wholly inside it.
  auto keep = MappedFile::range_owner(m, 0, 1);  // no whole page: releases nothing
  auto owner = MappedFile::range_owner(m, 100, 40 * page);
  m.reset();  // the owners alone keep the mapping
  owner.reset();
  const long released_kb = all_kb - resident_kb(data);
  EXPECT_EQ(released_kb, static_cast<long>(39 * page / 1024));
  // The bytes still read the same (faulted back in from the page cache).
  EXPECT_EQ(touch(), sum);
  EXPECT_EQ(std::memcmp(data, bytes.data(), size), 0);
}

TEST(MappedFile, MissingFileAndFolderAreIoErrors) {
  TempDir dir;
  EXPECT_THROW(MappedFile::open(dir / "nope"), IoError);
  EXPECT_THROW(MappedFile::open(dir.path()), IoError);
}

TEST(SafetensorsReader, ReadsHandAssembledFile) {
  TempDir dir;
  std::vector<float> a = {1.5f, -2.f, 3.f, 4.f, 5.f, 6.25f};
  std::vector<int64_t> b = {7, -8};
  std::string data = raw_bytes(a) + raw_bytes(b);
  std::string header = R"({"__metadata__":{"format":"pt","note":"x"},)"
                       R"("b":{"dtype":"I64","shape":[2],"data_offsets":[24,40]},)"
                       R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
                       R"("empty":{"dtype":"BF16","shape":[0,5],"data_offsets":[40,40]},)"
                       R"("scalar":{"dtype":"U8","shape":[],"data_offsets":[40,41]}})";
  // Pad the header with spaces to a multiple of 8 like the Python library.
  while ((header.size() + 8) % 8 != 0) header += ' ';
  data += '\x2a';
  write_file(dir / "m.safetensors", safetensors_bytes(header, data));

  auto f = SafetensorsFile::open(dir / "m.safetensors");
  EXPECT_EQ(f.name(), (dir / "m.safetensors").string());
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "x");
  EXPECT_EQ(f.header_size(), header.size());
  ASSERT_NE(f.owner(), nullptr);
  ASSERT_NE(f.mapping(), nullptr);

  const TensorInfo& ta = f.at("a");
  EXPECT_EQ(ta.dtype, Dtype::f32);
  EXPECT_EQ(ta.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ta.numel(), 6);
  EXPECT_EQ(ta.nbytes, 24u);
  EXPECT_EQ(ta.file_offset, 8 + header.size());
  EXPECT_TRUE(ta.aligned);
  std::vector<float> got(6);
  std::memcpy(got.data(), ta.data, 24);
  EXPECT_EQ(got, a);

  const TensorInfo& tb = f.at("b");
  EXPECT_EQ(tb.dtype, Dtype::i64);
  int64_t b1 = 0;
  std::memcpy(&b1, tb.data + 8, 8);
  EXPECT_EQ(b1, -8);

  EXPECT_EQ(f.at("empty").numel(), 0);
  EXPECT_EQ(f.at("empty").nbytes, 0u);
  EXPECT_EQ(f.at("scalar").numel(), 1);
  EXPECT_EQ(static_cast<int>(*f.at("scalar").data), 42);
  // Tensors are listed in data order.
  EXPECT_EQ(f.tensors()[0].name, "a");
  EXPECT_EQ(f.tensors()[1].name, "b");

  EXPECT_EQ(f.find("zzz"), nullptr);
  EXPECT_FALSE(f.contains("zzz"));
  try {
    (void)f.at("zzz");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("zzz"), std::string::npos);
  }

  // The owner keeps the bytes alive after the file object is gone.
  auto owner = f.owner();
  const std::byte* p = f.at("a").data;
  SafetensorsFile moved = std::move(f);
  EXPECT_EQ(moved.at("a").data, p);
  moved = SafetensorsFile();
  float first = 0;
  std::memcpy(&first, p, 4);
  EXPECT_EQ(first, 1.5f);
}

TEST(SafetensorsReader, FlagsUnalignedData) {
  // Header of 9 bytes puts the data section at offset 17: an F32 there is unaligned.
  std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  std::string bytes = safetensors_bytes(header, std::string(4, '\0'));
  // Copy into an 8-aligned buffer so the file offset decides the alignment.
  std::vector<uint64_t> buf((bytes.size() + 7) / 8);
  std::memcpy(buf.data(), bytes.data(), bytes.size());
  auto span =
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(buf.data()), bytes.size());
  auto f = SafetensorsFile::parse(span, "mem");
  EXPECT_EQ((8 + header.size()) % 4 != 0, !f.at("a").aligned);
  std::string padded = header;
  while ((padded.size() + 8) % 8 != 0) padded += ' ';
  bytes = safetensors_bytes(padded, std::string(4, '\0'));
  std::memcpy(buf.data(), bytes.data(), bytes.size());
  auto g = SafetensorsFile::parse(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(buf.data()), bytes.size()),
      "mem");
  EXPECT_TRUE(g.at("a").aligned);
}

// io::tensor_of copies a tensor whose bytes sit at a misaligned address (the prompt_cache
// fuzz target read such an i32 through its type: UBSan's misaligned load) and wraps an
// aligned one without a copy; the values are the file's either way.
TEST(SafetensorsReader, TensorOfCopiesMisalignedDataAndWrapsAligned) {
  const int32_t values[3] = {7, -123456, 2147483647};
  std::string data(reinterpret_cast<const char*>(values), sizeof values);
  for (const std::string& pad : {std::string(), std::string(" ")}) {
    std::string header = R"({"a":{"dtype":"I32","shape":[3],"data_offsets":[0,12]}})" + pad;
    while ((header.size() + 8) % 4 != (pad.empty() ? 0 : 1)) header += ' ';
    const std::string bytes = safetensors_bytes(header, data);
    std::vector<uint64_t> buf((bytes.size() + 7) / 8);
    std::memcpy(buf.data(), bytes.data(), bytes.size());
    auto f = SafetensorsFile::parse(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(buf.data()), bytes.size()), "mem");
    const TensorInfo& info = f.at("a");
    EXPECT_EQ(info.aligned, pad.empty());
    Tensor t = tensor_of(info, f.owner());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 4, 0u);
    EXPECT_EQ(t.raw_data() == info.data, info.aligned) << "a copy exactly when misaligned";
    EXPECT_EQ(t.to_int_vector(), (std::vector<int64_t>{7, -123456, 2147483647}));
  }
}

struct BadCase {
  const char* label;
  std::string bytes;
  const char* expect;  // substring of the message
};

std::vector<BadCase> bad_cases() {
  const std::string f4(4, '\0');
  auto one = [](const std::string& entry, const std::string& data) {
    return safetensors_bytes(R"({"w":)" + entry + "}", data);
  };
  std::vector<BadCase> v;
  v.push_back({"empty file", "", "too small"});
  v.push_back({"short length", "abc", "too small"});
  v.push_back({"length larger than file", le64(1000) + "{}", "larger than the file"});
  v.push_back({"length above cap", le64(200'000'000) + "{}", "exceeds the cap"});
  v.push_back({"negative length", le64(0x8000000000000000ull) + "{}", "negative"});
  v.push_back({"length near UINT64_MAX", le64(std::numeric_limits<uint64_t>::max() - 3) + "{}",
               "negative"});
  v.push_back({"length 0", le64(0), "too small"});
  v.push_back({"not json", safetensors_bytes("{nope", ""), "not valid JSON"});
  v.push_back({"not an object", safetensors_bytes("[1,2]", ""), "not a JSON object"});
  v.push_back({"entry not object", one("3", ""), "not an object"});
  v.push_back({"offsets count 1", one(R"({"dtype":"F32","shape":[1],"data_offsets":[0]})", f4),
               "data_offsets has 1 values"});
  v.push_back({"offsets count 3", one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4,8]})", f4),
               "data_offsets has 3 values"});
  v.push_back({"offsets missing", one(R"({"dtype":"F32","shape":[1]})", f4), "data_offsets"});
  v.push_back({"offsets inverted",
               one(R"({"dtype":"F32","shape":[0],"data_offsets":[4,0]})", f4 + f4), "inverted"});
  v.push_back({"offsets outside", one(R"({"dtype":"F32","shape":[1],"data_offsets":[4,8]})", f4),
               "outside"});
  v.push_back(
      {"offsets huge",
       one(R"({"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551615]})",
           f4),
       "data_offsets"});
  v.push_back({"offsets negative", one(R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})", f4),
               "negative"});
  v.push_back({"offsets float", one(R"({"dtype":"F32","shape":[1],"data_offsets":[0.5,4]})", f4),
               "invalid value"});
  v.push_back({"span disagrees with shape",
               one(R"({"dtype":"F32","shape":[1000,1000],"data_offsets":[0,4]})", f4),
               "needs 4000000"});
  v.push_back({"unknown dtype", one(R"({"dtype":"F33","shape":[1],"data_offsets":[0,4]})", f4),
               "unknown or unsupported dtype 'F33'"});
  v.push_back({"lowercase dtype",
               one(R"({"dtype":"float32","shape":[1],"data_offsets":[0,4]})", f4), "dtype"});
  v.push_back(
      {"dtype not string", one(R"({"dtype":4,"shape":[1],"data_offsets":[0,4]})", f4), "dtype"});
  v.push_back(
      {"shape overflow",
       one(R"({"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]})", f4),
       "overflows"});
  v.push_back({"shape bytes overflow",
               one(R"({"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]})", f4),
               "overflows"});
  v.push_back({"shape negative", one(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})", f4),
               "negative"});
  v.push_back(
      {"shape not array", one(R"({"dtype":"F32","shape":4,"data_offsets":[0,4]})", f4), "shape"});
  v.push_back({"overlap",
               safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                 f4 + f4 + f4),
               "overlaps"});
  v.push_back({"metadata not strings", safetensors_bytes(R"({"__metadata__":{"a":1}})", ""),
               "__metadata__"});
  v.push_back(
      {"metadata not object", safetensors_bytes(R"({"__metadata__":[1]})", ""), "__metadata__"});
  v.push_back({"duplicate name",
               safetensors_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                 R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                 f4 + f4),
               "'a': appears twice"});
  v.push_back({"deep nesting",
               safetensors_bytes(std::string(100000, '[') + std::string(100000, ']'), ""),
               "not a JSON object"});
  v.push_back(
      {"deep nesting unclosed", safetensors_bytes(std::string(100000, '{'), ""), "not valid JSON"});
  return v;
}

TEST(SafetensorsReader, BadInputsGiveFormatErrorsNamingFileAndField) {
  TempDir dir;
  int i = 0;
  for (const BadCase& c : bad_cases()) {
    SCOPED_TRACE(c.label);
    const auto path = dir / ("bad" + std::to_string(i++) + ".safetensors");
    write_file(path, c.bytes);
    try {
      (void)SafetensorsFile::open(path);
      ADD_FAILURE() << "no error";
    } catch (const FormatError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
      EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "wrong exception: " << e.what();
    }
  }
}

TEST(SafetensorsReader, ErrorsNameTheTensor) {
  auto bytes = safetensors_bytes(
      R"({"model.layers.0.mlp.up_proj.weight":{"dtype":"F16","shape":[3],"data_offsets":[0,4]}})",
      std::string(4, '\0'));
  try {
    (void)SafetensorsFile::parse(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()),
        "shard.safetensors");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("'model.layers.0.mlp.up_proj.weight'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("shard.safetensors"), std::string::npos);
  }
}

}  // namespace
}  // namespace lmx::io
