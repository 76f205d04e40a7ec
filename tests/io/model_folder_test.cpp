#include "lmx/io/model_folder.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/io/safetensors_writer.h"
#include "tests/io/io_test_util.h"

namespace lmx::io {
namespace {

using testing::TempDir;
using testing::write_file;
namespace fs = std::filesystem;

// Writes a safetensors file with one f32 [2] tensor per name.
void write_weights(const fs::path& path, const std::vector<std::string>& names) {
  static const float kData[2] = {1.f, 2.f};
  SafetensorsWriter w;
  for (const auto& n : names) w.add(n, Dtype::f32, {2}, kData, sizeof(kData));
  w.write(path);
}

void write_index(const fs::path& dir, const nlohmann::json& weight_map) {
  write_file(dir / "model.safetensors.index.json",
             nlohmann::json{{"metadata", {{"total_size", 16}}}, {"weight_map", weight_map}}.dump());
}

template <typename Fn>
std::string format_error_of(Fn&& fn) {
  try {
    fn();
  } catch (const FormatError& e) {
    return e.what();
  }
  return "<no FormatError>";
}

TEST(ModelFolder, SingleFileWithConfigs) {
  TempDir dir;
  write_file(dir / "config.json", R"({"model_type":"llama","hidden_size":64})");
  write_file(dir / "generation_config.json", R"({"eos_token_id":2})");
  write_weights(dir / "model.safetensors", {"a.weight", "b.weight"});
  write_weights(dir / "adapters.safetensors", {"a.weight"});  // not a weight file
  auto m = ModelFolder::open(dir.path());
  EXPECT_EQ(m.path(), dir.path());
  EXPECT_EQ(m.model_type(), "llama");
  EXPECT_EQ(m.raw_config()["hidden_size"], 64);
  EXPECT_EQ(m.text_config(), m.raw_config());
  ASSERT_NE(m.generation_config(), nullptr);
  EXPECT_EQ((*m.generation_config())["eos_token_id"], 2);
  ASSERT_EQ(m.weight_files().size(), 1u);
  EXPECT_EQ(m.weights().size(), 2u);
  const WeightRef& r = m.weights().at("b.weight");
  EXPECT_EQ(r.info->shape, (std::vector<int64_t>{2}));
  EXPECT_NE(r.file->owner(), nullptr);
  EXPECT_THROW((void)m.weights().at("zzz"), InvalidArgument);

  ModelFolder moved = std::move(m);
  EXPECT_TRUE(moved.weights().rename("b.weight", "c.weight"));
  EXPECT_FALSE(moved.weights().contains("b.weight"));
  EXPECT_TRUE(moved.weights().contains("c.weight"));
  EXPECT_THROW(moved.weights().rename("a.weight", "c.weight"), InvalidArgument);
  EXPECT_TRUE(moved.weights().erase("a.weight"));
  EXPECT_FALSE(moved.weights().erase("a.weight"));
  EXPECT_EQ(moved.weights().size(), 1u);
}

TEST(ModelFolder, MergesNestedTextConfig) {
  TempDir dir;
  write_file(
      dir / "config.json",
      R"({"model_type":"gemma3","vision_config":{"hidden_size":1152},)"
      R"("quantization":{"bits":4,"group_size":64},"image_token_index":262144,)"
      R"("text_config":{"model_type":"gemma3_text","hidden_size":640,"num_hidden_layers":2}})");
  write_weights(dir / "model.safetensors", {"x"});
  auto m = ModelFolder::open(dir.path());
  EXPECT_EQ(m.model_type(), "gemma3_text");
  EXPECT_EQ(m.raw_config()["model_type"], "gemma3");
  const auto& t = m.text_config();
  EXPECT_EQ(t["hidden_size"], 640);
  EXPECT_EQ(t["num_hidden_layers"], 2);
  EXPECT_EQ(t["quantization"]["bits"], 4);
  EXPECT_EQ(t["image_token_index"], 262144);
  EXPECT_FALSE(t.contains("text_config"));
  EXPECT_FALSE(t.contains("vision_config"));
  EXPECT_EQ(m.generation_config(), nullptr);
}

TEST(ModelFolder, CompleteIndexIsTrustedAndStrayFilesIgnored) {
  TempDir dir;
  write_file(dir / "config.json", R"({"model_type":"llama"})");
  write_weights(dir / "model-00001-of-00002.safetensors", {"a", "b"});
  write_weights(dir / "model-00002-of-00002.safetensors", {"c"});
  // Strays that would clash: an old single file and a consolidated copy.
  write_weights(dir / "model.safetensors", {"a", "b", "c"});
  write_weights(dir / "consolidated.safetensors", {"a"});
  write_index(dir.path(), {{"a", "model-00001-of-00002.safetensors"},
                           {"b", "model-00001-of-00002.safetensors"},
                           {"c", "model-00002-of-00002.safetensors"}});
  auto m = ModelFolder::open(dir.path());
  EXPECT_EQ(m.weight_files(), (std::vector<fs::path>{"model-00001-of-00002.safetensors",
                                                     "model-00002-of-00002.safetensors"}));
  EXPECT_EQ(m.weights().size(), 3u);
  EXPECT_NE(m.weights().at("c").file->name().find("model-00002-of-00002"), std::string::npos);
}

TEST(ModelFolder, IndexNamingMissingFilesFails) {
  TempDir dir;
  write_file(dir / "config.json", R"({"model_type":"llama"})");
  write_weights(dir / "model-00001-of-00003.safetensors", {"a"});
  write_index(dir.path(), {{"a", "model-00001-of-00003.safetensors"},
                           {"b", "model-00002-of-00003.safetensors"},
                           {"c", "model-00003-of-00003.safetensors"}});
  const std::string msg = format_error_of([&] { (void)ModelFolder::open(dir.path()); });
  EXPECT_NE(msg.find("missing weight files"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model-00002-of-00003.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model-00003-of-00003.safetensors"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("model-00001-of-00003.safetensors,"), std::string::npos) << msg;
}

TEST(ModelFolder, IndexDisagreeingWithFilesFails) {
  TempDir dir;
  write_file(dir / "config.json", R"({"model_type":"llama"})");
  write_weights(dir / "model-1.safetensors", {"a"});
  write_weights(dir / "model-2.safetensors", {"b"});
  write_index(dir.path(), {{"a", "model-2.safetensors"}, {"b", "model-1.safetensors"}});
  const std::string msg = format_error_of([&] { (void)ModelFolder::open(dir.path()); });
  EXPECT_NE(msg.find("places tensor"), std::string::npos) << msg;
  EXPECT_NE(msg.find("which does not hold it"), std::string::npos) << msg;
}

TEST(ModelFolder, IndexEscapingTheFolderFails) {
  TempDir dir;
  write_file(dir / "config.json", R"({"model_type":"llama"})");
  write_index(dir.path(), {{"a", "../outside.safetensors"}});
  const std::string msg = format_error_of([&] { (void)ModelFolder::open(dir.path()); });
  EXPECT_NE(msg.find("outside the folder"), std::string::npos) << msg;
  write_index(dir.path(), {{"a", "/etc/passwd"}});
  EXPECT_NE(format_error_of([&] { (void)ModelFolder::open(dir.path()); }).find("outside"),
            std::string::npos);
  write_index(dir.path(), {{"a", 3}});
  EXPECT_NE(format_error_of([&] { (void)ModelFolder::open(dir.path()); }).find("'a'"),
            std::string::npos);
  write_file(dir / "model.safetensors.index.json", R"({"nope":1})");
  EXPECT_NE(format_error_of([&] { (void)ModelFolder::open(dir.path()); }).find("weight_map"),
            std::string::npos);
}

TEST(ModelFolder, ShardsWithoutIndexAndDuplicates) {
  TempDir dir;
  write_file(dir / "config.json", R"({"model_type":"llama"})");
  write_weights(dir / "model-00002-of-00002.safetensors", {"b"});
  write_weights(dir / "model-00001-of-00002.safetensors", {"a"});
  auto m = ModelFolder::open(dir.path());
  EXPECT_EQ(m.weight_files().front(), fs::path("model-00001-of-00002.safetensors"));
  EXPECT_EQ(m.weights().size(), 2u);
  write_weights(dir / "model-extra.safetensors", {"a"});
  const std::string msg = format_error_of([&] { (void)ModelFolder::open(dir.path()); });
  EXPECT_NE(msg.find("tensor 'a' appears in both"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model-extra.safetensors"), std::string::npos) << msg;
}

TEST(ModelFolder, OtherSafetensorsNamesAreAFallback) {
  TempDir dir;
  write_file(dir / "config.json", R"({"model_type":"llama"})");
  write_weights(dir / "weights.00.safetensors", {"a"});
  write_weights(dir / "adapters.safetensors", {"a"});
  auto m = ModelFolder::open(dir.path());
  EXPECT_EQ(m.weight_files(), (std::vector<fs::path>{"weights.00.safetensors"}));
}

TEST(ModelFolder, MissingOrMalformedPieces) {
  TempDir dir;
  EXPECT_THROW(ModelFolder::open(dir / "nope"), IoError);
  EXPECT_THROW(ModelFolder::open(dir.path()), IoError);  // no config.json
  write_file(dir / "config.json", "{not json");
  EXPECT_NE(format_error_of([&] { (void)ModelFolder::open(dir.path()); }).find("config.json"),
            std::string::npos);
  write_file(dir / "config.json", R"({"model_type":"llama","text_config":3})");
  EXPECT_THROW(ModelFolder::open(dir.path()), FormatError);
  write_file(dir / "config.json", R"({"model_type":"llama"})");
  EXPECT_NE(format_error_of([&] { (void)ModelFolder::open(dir.path()); }).find("no *.safetensors"),
            std::string::npos);
  write_file(dir / "model.safetensors", "garbage!!");
  EXPECT_THROW(ModelFolder::open(dir.path()), FormatError);
  write_weights(dir / "model.safetensors", {"a"});
  write_file(dir / "generation_config.json", "[");
  EXPECT_THROW(ModelFolder::open(dir.path()), FormatError);
}

}  // namespace
}  // namespace lmx::io
