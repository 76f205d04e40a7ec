// ChatSession with images (the llava fixture of tests/data/vision/models with a word-level
// tokenizer and chat template: tests/vision/vlm_chat_folder.h): images stay in the
// history, a later turn reuses the cache over the earlier image and feeds only the new
// one, and its first token is the argmax of one uncached pass over the whole transcript
// with every image.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "lmx/core/ops/reduce.h"
#include "lmx/generate/chat_session.h"
#include "lmx/models/vlm/image_inputs.h"
#include "lmx/vision/image_decode.h"
#include "tests/vision/vlm_chat_folder.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;

fs::path fixture() { return fs::path(LMX_SOURCE_DIR) / "tests/data/vision/models/llava"; }

class ChatImages : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmx-chat-images-" + std::to_string(::getpid()));
    testing::write_vlm_chat_folder(fixture(), dir_);
    container_ = generate::ModelContainer::load(dir_.string());
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A copy of image0.png with its pixels shifted: same size, other content.
  static vision::Image other_image() {
    vision::Image im = vision::load_image((fixture() / "image0.png").string());
    for (auto& v : im.rgb) v = static_cast<uint8_t>(v + 77);
    return im;
  }

  fs::path dir_;
  std::shared_ptr<generate::ModelContainer> container_;
};

TEST_F(ChatImages, ImagesStayInTheHistoryAndTheCacheIsReusedOverThem) {
  generate::GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 2;
  generate::ChatSession session(container_, "", p);
  const vision::Image first = vision::load_image((fixture() / "image0.png").string());
  session.add_image(first);
  session.respond("t17 t33");
  const int64_t first_prompt = session.last_info().prompt_tokens;
  EXPECT_EQ(first_prompt, 1 + 16 + 3);  // t1, 16 placeholders, t17 t33 t9
  session.add_image(other_image());
  std::string reply;
  session.stream_details("t40", [&](const generate::GenerationEvent& e) {
    if (e.kind == generate::GenerationEvent::Kind::text) reply += e.text;
    return true;
  });
  // The first turn (with its image) came from the cache: all of it but the closing t9,
  // which the template writes only after the last message.
  EXPECT_GE(session.last_info().cached_prompt_tokens, first_prompt - 1);
  ASSERT_EQ(session.history().size(), 4u);
  EXPECT_TRUE(session.history()[2]["content"].is_array());

  // One uncached pass over the same transcript with both images.
  generate::UserInput input;
  input.messages = std::make_shared<nlohmann::ordered_json>(session.history());
  input.messages->erase(input.messages->end() - 1);  // the reply to this turn
  auto* vlm = dynamic_cast<models::vlm::VisionLanguageModel*>(&container_->model());
  ASSERT_NE(vlm, nullptr);
  const auto all = models::vlm::image_inputs(
      vision::load_image_processor(dir_)->process({first, other_image()}));
  const std::vector<int32_t> ids = models::vlm::expand_image_prompt(
      *vlm, container_->tokenizer().encode(container_->render_prompt(input), false), all, container_->tokenizer());
  vlm->set_images(all);
  Tensor logits = vlm->forward(Tensor::from_vector(ids, {1, static_cast<int64_t>(ids.size())}), nullptr, {});
  const std::vector<float> last = logits.select(1, logits.dim(1) - 1).to_float_vector();
  const auto best = std::max_element(last.begin(), last.end()) - last.begin();
  std::smatch m;
  if (!std::regex_search(reply, m, std::regex("t(\\d+)"))) {
    EXPECT_EQ(best, 2) << "an empty reply must be the end-of-sequence token t2";
  } else {
    EXPECT_EQ(std::stol(m[1].str()), best) << reply;
  }
}

TEST_F(ChatImages, SessionsWithImagesCannotBeSaved) {
  generate::ChatSession session(container_);
  session.add_image(other_image());
  EXPECT_THROW(session.save(dir_ / "s.safetensors"), InvalidArgument);
}

}  // namespace
}  // namespace lmx
