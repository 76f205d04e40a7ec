// RFC 4648's test vectors (section 10) both ways, and random bytes round trips.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "lmx/base/base64.h"

namespace lmx {
namespace {

TEST(Base64, Rfc4648Vectors) {
  const std::pair<std::string, std::string> vectors[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, coded] : vectors) {
    EXPECT_EQ(encode_base64(plain.data(), plain.size()), coded) << plain;
    EXPECT_EQ(decode_base64(coded), plain) << coded;
  }
  EXPECT_EQ(decode_base64("Zm9v!"), std::nullopt);
}

TEST(Base64, RandomBytesRoundTrip) {
  std::mt19937 rng(7);
  for (size_t n = 0; n < 40; ++n) {
    std::string bytes(n, '\0');
    for (char& c : bytes) c = static_cast<char>(rng() & 0xFF);
    const std::string coded = encode_base64(bytes.data(), bytes.size());
    EXPECT_EQ(coded.size(), (n + 2) / 3 * 4);
    EXPECT_EQ(decode_base64(coded), bytes);
  }
}

}  // namespace
}  // namespace lmx
