// Vision-language models through the lmx binary: `lmx logits --pixel-values` gives
// transformers' logits on the VLM fixtures (tests/data/vision/models), and `lmx generate
// --image` renders the chat template's image part, expands it and runs the image.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "cli_run.h"
#include "lmx/io/safetensors.h"
#include "tests/vision/vlm_chat_folder.h"

namespace {

namespace fs = std::filesystem;
using lmx::testing::lmx_run;
using lmx::testing::lmx_stderr;

fs::path fixture(const std::string& family) {
  return fs::path(LMX_SOURCE_DIR) / "tests/data/vision/models" / family;
}

std::vector<float> floats(const lmx::io::SafetensorsFile& f, const std::string& name) {
  const auto& t = f.at(name);
  std::vector<float> v(static_cast<size_t>(t.numel()));
  std::memcpy(v.data(), t.data, t.nbytes);
  return v;
}

std::string input_ids(const lmx::io::SafetensorsFile& f) {
  const auto& t = f.at("input_ids");
  std::vector<int64_t> v(static_cast<size_t>(t.numel()));
  std::memcpy(v.data(), t.data, t.nbytes);
  std::string s;
  for (int64_t id : v) {
    if (!s.empty()) s += ',';
    s += std::to_string(id);
  }
  return s;
}

class VlmCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmx-vlm-cli-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(VlmCli, LogitsWithPixelValuesMatchTransformers) {
  for (const char* family : {"llava", "qwen2_vl", "qwen2_5_vl", "gemma3"}) {
    SCOPED_TRACE(family);
    const fs::path ref_path = fixture(family) / "reference.safetensors";
    auto ref = lmx::io::SafetensorsFile::open(ref_path);
    const fs::path out = dir_ / (std::string(family) + ".safetensors");
    auto r = lmx_run("logits --model " + fixture(family).string() + " --tokens " + input_ids(ref) +
                     " --pixel-values " + ref_path.string() + " --out " + out.string());
    ASSERT_EQ(r.status, 0) << r.out;
    const std::vector<float> got = floats(lmx::io::SafetensorsFile::open(out), "logits");
    const std::vector<float> want = floats(ref, "logits");
    ASSERT_EQ(got.size(), want.size());
    double scale = 1.0, err = 0.0;
    for (size_t i = 0; i < want.size(); ++i) {
      scale = std::max(scale, static_cast<double>(std::fabs(want[i])));
      err = std::max(err, static_cast<double>(std::fabs(got[i] - want[i])));
    }
    EXPECT_LE(err / scale, 1e-4);
  }
}

TEST_F(VlmCli, PixelValuesOfTheWrongShapeOrModelAreClearErrors) {
  const fs::path ref = fixture("llava") / "reference.safetensors";
  auto r = lmx_stderr("logits --model " + fixture("qwen2_vl").string() + " --tokens 1,250,2 --pixel-values " +
                      ref.string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("image_grid_thw"), std::string::npos) << r.out;
}

TEST_F(VlmCli, GenerateWithAnImageExpandsThePromptAndRunsTheImage) {
  const fs::path model = dir_ / "llava";
  lmx::testing::write_vlm_chat_folder(fixture("llava"), model);
  const std::string image = (fixture("llava") / "image0.png").string();
  // "t1 <image> t17 t33 t9": 5 tokens, the marker expanded to the 16 placeholders.
  auto r = lmx_run("generate --model " + model.string() + " --image " + image +
                       " --prompt 't17 t33' --max-tokens 3 --temp 0 -v",
                   "", true);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("Prompt: 20 tokens"), std::string::npos) << r.out;
  // The first generated token is the argmax of the same prompt's logits with the image.
  std::string ids = "1";
  for (int i = 0; i < 16; ++i) ids += ",250";
  ids += ",17,33,9";
  const fs::path pv = dir_ / "pv.safetensors";
  ASSERT_EQ(lmx_run("preprocess --model " + model.string() + " --image " + image + " --out " + pv.string()).status, 0);
  auto logits = lmx_run("logits --model " + model.string() + " --tokens " + ids + " --pixel-values " + pv.string());
  ASSERT_EQ(logits.status, 0) << logits.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(logits.out, m, std::regex("top-5: (\\d+)"))) << logits.out;
  auto text = lmx_run("generate --model " + model.string() + " --image " + image +
                      " --prompt 't17 t33' --max-tokens 1 --temp 0");
  ASSERT_EQ(text.status, 0);
  EXPECT_TRUE(std::regex_search(text.out, std::regex("^\\s*t" + m[1].str() + "(\\D|$)")))
      << "expected t" << m[1] << " in: " << text.out;
  // Without the chat template the image markers have nowhere to go.
  auto refused = lmx_stderr("generate --model " + model.string() + " --image " + image +
                            " --prompt 't17' --ignore-chat-template");
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.out.find("chat template"), std::string::npos) << refused.out;
}

// `lmx chat` with `/video PATH`: the video joins the next message as a video part and the
// reply is the one `lmx generate --video` gives for the same prompt (greedy); a second turn
// keeps the video in the history.
TEST_F(VlmCli, ChatVideoRepliesAsGenerateWithTheVideo) {
  const fs::path model = dir_ / "qwen2_vl";
  lmx::testing::write_vlm_chat_folder(fixture("qwen2_vl"), model);
  const std::string video = (fs::path(LMX_SOURCE_DIR) / "tests/data/vision/video/clip_h264_64x36.mp4").string();
  const std::string opts = " --max-tokens 4 --temp 0 --top-logprobs 3 --logprobs-file ";
  const std::string gen_args = "generate --model " + model.string() + " --video " + video + " --prompt 't17 t33'" +
                               opts + (dir_ / "gen.jsonl").string();
  auto gen = lmx_run(gen_args);  // stdout alone: the reply is compared below
  if (gen.status != 0) {         // the reason is on stderr: a build without FFmpeg skips
    const auto why = lmx_run(gen_args, "", true);
    if (why.out.find("without video support") != std::string::npos) GTEST_SKIP() << why.out;
    FAIL() << why.out;
  }
  auto chat = lmx_run("chat --model " + model.string() + opts + (dir_ / "chat.jsonl").string(),
                      "/video " + video + "\nt17 t33\n");
  ASSERT_EQ(chat.status, 0) << chat.out;
  const std::string joined = "(video " + video + " joins your next message)\n";
  const size_t at = chat.out.find(joined);
  ASSERT_NE(at, std::string::npos) << chat.out;
  std::string reply = chat.out.substr(at + joined.size());
  reply = reply.substr(0, reply.find('\n'));
  if (reply.rfind(">> ", 0) == 0) reply.erase(0, 3);  // the chat's prompt
  std::string want = gen.out.substr(0, gen.out.find('\n'));
  EXPECT_FALSE(want.empty()) << gen.out;
  EXPECT_EQ(reply, want) << "chat: " << chat.out << "\ngenerate: " << gen.out;
  // Each token's top log-probabilities too (the same prompt, positions and video features).
  auto slurp = [](const fs::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  const std::string gen_lp = slurp(dir_ / "gen.jsonl"), chat_lp = slurp(dir_ / "chat.jsonl");
  EXPECT_FALSE(gen_lp.empty());
  EXPECT_EQ(chat_lp, gen_lp);
  ASSERT_EQ(lmx_run("generate --model " + model.string() + " --prompt 't17 t33'" + opts + (dir_ / "text.jsonl").string())
                .status,
            0);
  EXPECT_NE(slurp(dir_ / "text.jsonl"), gen_lp) << "the video changes nothing: the comparison above shows nothing";
  // A later turn keeps the video in the history (the chat template renders it again).
  auto two = lmx_run("chat --model " + model.string() + " --max-tokens 2 --temp 0 -v", "/video " + video + "\nt17 t33\nt40\n", true);
  ASSERT_EQ(two.status, 0) << two.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(two.out, m, std::regex("\\((\\d+) cached\\)[^\\n]*\\n[^]*\\((\\d+) cached\\)"))) << two.out;
  EXPECT_GT(std::stoi(m[2].str()), 8) << two.out;  // the second turn reuses the cache over the video
  // Without a path, or a file that cannot be read: said, and the chat goes on.
  auto bad = lmx_run("chat --model " + model.string() + " --max-tokens 1 --temp 0", "/video\n/video /nonexistent.mp4\nt5\n", true);
  ASSERT_EQ(bad.status, 0) << bad.out;
  EXPECT_NE(bad.out.find("usage: /video PATH"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("nonexistent.mp4"), std::string::npos) << bad.out;
}

// `lmx generate --video`: the clip decoded and sampled (4 of its 10 frames), one video part
// through the chat template, its marker expanded to the video's placeholders (4 frames of
// 28x56 px: 2 temporal patches of 2x4 patches, merged 2x2: 4 tokens). Parity of the
// video path with transformers is in vlm_test (VlmVideo).
TEST_F(VlmCli, GenerateWithAVideoExpandsThePromptAndRunsTheVideo) {
  const fs::path model = dir_ / "qwen2_vl";
  lmx::testing::write_vlm_chat_folder(fixture("qwen2_vl"), model);
  const std::string video = (fs::path(LMX_SOURCE_DIR) / "tests/data/vision/video/clip_h264_64x36.mp4").string();
  auto r = lmx_run("generate --model " + model.string() + " --video " + video +
                       " --frames 4 --prompt 't17 t33' --max-tokens 2 --temp 0 -v",
                   "", true);
  if (r.status != 0 && r.out.find("without video support") != std::string::npos) GTEST_SKIP() << r.out;
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("Prompt: 8 tokens"), std::string::npos) << r.out;
  // --fps and --frames exclude each other; a model without videos and a file without a
  // video stream are refused, naming what is wrong.
  EXPECT_NE(lmx_stderr("generate --model " + model.string() + " --video " + video + " --fps 2 --frames 4 --prompt t5").status, 0);
  const fs::path llava = dir_ / "llava";
  lmx::testing::write_vlm_chat_folder(fixture("llava"), llava);
  auto no_video = lmx_stderr("generate --model " + llava.string() + " --video " + video + " --prompt t5");
  EXPECT_NE(no_video.status, 0);
  EXPECT_NE(no_video.out.find("takes no videos"), std::string::npos) << no_video.out;
  const std::string wav = (fs::path(LMX_SOURCE_DIR) / "tests/data/vision/video/no_video.wav").string();
  auto audio = lmx_stderr("generate --model " + model.string() + " --video " + wav + " --prompt t5");
  EXPECT_NE(audio.status, 0);
  EXPECT_NE(audio.out.find("no_video.wav: has no video stream"), std::string::npos) << audio.out;
}

}  // namespace
