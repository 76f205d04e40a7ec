#include "tokenizer_test_util.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace lmx::tokenizer::test {

std::filesystem::path shared_data(const std::string& rel) {
  return std::filesystem::path(LMX_SOURCE_DIR) / ".." / "shared" / "data" / rel;
}

std::filesystem::path npm_tokenizer(const std::string& name) {
  return std::filesystem::path(LMX_SOURCE_DIR) / ".cache" / "npm-tokenizers" / name;
}

std::filesystem::path test_data(const std::string& rel) {
  return std::filesystem::path(LMX_SOURCE_DIR) / "tests" / "data" / "tokenizer" / rel;
}

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t k = 0; k < ids.size(); ++k) {
    if (k) s += ' ';
    s += std::to_string(ids[k]);
  }
  return s;
}

}  // namespace lmx::tokenizer::test
