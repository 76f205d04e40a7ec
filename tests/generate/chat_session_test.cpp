// ChatSession over stories260K: later turns reuse the cached prefix and still produce
// exactly what a fresh pass over the whole transcript produces.
#include "lmx/generate/chat_session.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "lmx/io/llama2c_import.h"
#include "shared_data.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<generate::ModelContainer> stories_container() {
  static std::shared_ptr<generate::ModelContainer> c = [] {
    const fs::path src = testing::shared_data("models/stories260K");
    const fs::path dir = fs::temp_directory_path() / ("lmx-session-" + std::to_string(::getpid()));
    io::import_llama2c(src / "stories260K.bin", src / "tok512.bin", dir);
    auto loaded = generate::ModelContainer::load(dir.string());
    fs::remove_all(dir);
    return loaded;
  }();
  return c;
}

std::string fresh_reply(const std::string& transcript, const generate::GenerateParameters& p) {
  auto c = stories_container();
  generate::GenerateOptions o;
  o.eos_ids = c->eos_ids();
  generate::Generation gen(c->model(), c->tokenizer(), c->tokenizer().encode(transcript, true), p, o);
  std::string text;
  while (auto e = gen.next())
    if (e->kind == generate::GenerationEvent::Kind::text) text += e->text;
  return text;
}

class ChatSessionTest : public ::testing::Test {
 protected:
  void SetUp() override { LMX_REQUIRE_SHARED(testing::shared_data("models/stories260K/stories260K.bin")); }
};

TEST_F(ChatSessionTest, LaterTurnsReuseTheCacheAndMatchAFreshPass) {
  generate::GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 24;
  generate::ChatSession session(stories_container(), "", p);
  const std::string r1 = session.respond("Once upon a time");
  EXPECT_EQ(r1, fresh_reply("Once upon a time", p));
  EXPECT_EQ(session.last_info().cached_prompt_tokens, 0);
  const std::string r2 = session.respond("Lily");
  EXPECT_EQ(r2, fresh_reply("Once upon a time\n" + r1 + "\nLily", p));
  // Turn 1's prompt (BOS + 4 tokens) at least came from the cache.
  EXPECT_GE(session.last_info().cached_prompt_tokens, 5);
  EXPECT_EQ(session.history().size(), 4u);
  const std::string r3 = session.respond("The dog");
  EXPECT_EQ(r3, fresh_reply("Once upon a time\n" + r1 + "\nLily\n" + r2 + "\nThe dog", p));
  session.clear();
  EXPECT_EQ(session.history().size(), 0u);
  EXPECT_EQ(session.respond("Once upon a time"), r1);
}

TEST_F(ChatSessionTest, StreamingChunksConcatenateToTheReplyAndCanStopEarly) {
  generate::GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 30;
  generate::ChatSession session(stories_container(), "", p);
  std::string streamed;
  const std::string reply = session.stream_response("Once upon a time", [&](const std::string& chunk) {
    streamed += chunk;
    return true;
  });
  EXPECT_EQ(streamed, reply);
  int chunks = 0;
  session.stream_response("Lily", [&](const std::string&) { return ++chunks < 3; });
  EXPECT_EQ(chunks, 3);
  EXPECT_EQ(session.last_info().stop_reason, generate::StopReason::cancelled);
}

}  // namespace
}  // namespace lmx
