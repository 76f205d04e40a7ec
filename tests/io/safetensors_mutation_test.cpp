// Deterministic stand-in for the fuzz target: thousands of mutated headers through the
// same entry point; only FormatError / IoError may escape, never a crash or another type.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/io/safetensors_writer.h"
#include "tests/io/io_test_util.h"
#include "tests/io/safetensors_fuzz_entry.h"

namespace lmx::io {
namespace {

using testing::read_file;
using testing::safetensors_bytes;
using testing::TempDir;

std::vector<std::string> seeds() {
  TempDir dir;
  std::vector<float> f(12, 1.f);
  std::vector<uint16_t> h(7, 0x3c00);
  std::vector<int64_t> l(3, 5);
  SafetensorsWriter w;
  w.add("model.embed_tokens.weight", Dtype::f32, {3, 4}, f.data(), 48);
  w.add("model.layers.0.mlp.up_proj.scales", Dtype::bf16, {7}, h.data(), 14);
  w.add("ids", Dtype::i64, {3}, l.data(), 24);
  w.add("empty", Dtype::u8, {0}, nullptr, 0);
  w.set_metadata("format", "mlx");
  w.write(dir / "a.safetensors");
  std::vector<std::string> out = {read_file(dir / "a.safetensors")};
  out.push_back(safetensors_bytes(
      R"({"a":{"dtype":"U32","shape":[2,1],"data_offsets":[0,8]},"b":{"dtype":"BOOL","shape":[],"data_offsets":[8,9]}})",
      std::string(9, '\x01')));
  out.push_back(safetensors_bytes("{}", ""));
  return out;
}

const char* const kTokens[] = {"{",
                               "}",
                               "[",
                               "]",
                               ",",
                               ":",
                               "\"",
                               "-1",
                               "0",
                               "1e309",
                               "18446744073709551615",
                               "9223372036854775808",
                               "4294967296",
                               "null",
                               "true",
                               "\"F32\"",
                               "\"dtype\"",
                               "\"shape\"",
                               "\"data_offsets\"",
                               "\"__metadata__\"",
                               "\\u0000",
                               "\xff",
                               "[[[[[[[[",
                               "0.5"};

std::string mutate(std::string s, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  const int ops = 1 + static_cast<int>(rng() % 4);
  for (int k = 0; k < ops; ++k) {
    switch (rng() % 7) {
      case 0:  // flip a bit anywhere
        if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1:  // random byte inside the header text
        if (s.size() > 8) s[8 + pick(s.size() - 8)] = static_cast<char>(rng());
        break;
      case 2:  // truncate
        s.resize(pick(s.size() + 1));
        break;
      case 3: {  // insert a JSON-ish token in the header text
        const std::string t = kTokens[pick(std::size(kTokens))];
        s.insert(s.size() > 8 ? 8 + pick(s.size() - 8) : s.size(), t);
        break;
      }
      case 4:  // delete a span
        if (!s.empty()) {
          const size_t at = pick(s.size());
          s.erase(at, 1 + pick(16));
        }
        break;
      case 5:  // rewrite the length field
        if (s.size() >= 8) {
          uint64_t n = rng();
          if (rng() % 2) n %= s.size() + 16;
          for (int i = 0; i < 8; ++i) s[size_t(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
        }
        break;
      default: {  // swap in a big or negative number where a digit is
        const size_t at = s.find_first_of("0123456789", 8 + pick(s.size() > 8 ? s.size() - 8 : 1));
        if (at != std::string::npos) s.replace(at, 1, kTokens[7 + pick(5)]);
        break;
      }
    }
  }
  return s;
}

TEST(SafetensorsMutation, OnlyFormatOrIoErrorsEscape) {
  std::mt19937_64 rng(20260425);
  const auto base = seeds();
  int parsed = 0, rejected = 0;
  for (int i = 0; i < 6000; ++i) {
    const std::string input = mutate(base[static_cast<size_t>(i) % base.size()], rng);
    // Copy into an exact-size heap buffer so ASan builds catch any read past the end.
    std::vector<uint8_t> buf(input.begin(), input.end());
    try {
      (void)testing::fuzz_safetensors_header(buf.data(), buf.size());
      ++parsed;
    } catch (const FormatError&) {
      ++rejected;
    } catch (const IoError&) {
      ++rejected;
    } catch (const std::exception& e) {
      FAIL() << "case " << i << ": unexpected exception: " << e.what();
    } catch (...) {
      FAIL() << "case " << i << ": unexpected non-std exception";
    }
  }
  // Both outcomes occur, so the mutations neither always break nor never break the file.
  EXPECT_GT(parsed, 50);
  EXPECT_GT(rejected, 1000);
}

}  // namespace
}  // namespace lmx::io
