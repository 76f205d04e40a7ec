// ChatSession over stories260K: later turns reuse the cached prefix and still produce
// exactly what a fresh pass over the whole transcript produces.
#include "lmx/generate/chat_session.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "lmx/io/llama2c_import.h"
#include "lmx/models/load.h"
#include "lmx/models/save.h"
#include "shared_data.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;

// stories260K imported into a fresh folder; `edit` may add files (a chat template) or
// change config.json before loading.
std::shared_ptr<generate::ModelContainer> import_stories(const std::string& tag,
                                                         const std::function<void(const fs::path&)>& edit = {}) {
  const fs::path src = testing::shared_data("models/stories260K");
  const fs::path dir = fs::temp_directory_path() / ("lmx-session-" + tag + "-" + std::to_string(::getpid()));
  io::import_llama2c(src / "stories260K.bin", src / "tok512.bin", dir);
  if (edit) edit(dir);
  auto loaded = generate::ModelContainer::load(dir.string());
  fs::remove_all(dir);
  return loaded;
}

std::shared_ptr<generate::ModelContainer> stories_container() {
  static std::shared_ptr<generate::ModelContainer> c = import_stories("plain");
  return c;
}

fs::path temp_file(const std::string& name) {
  return fs::temp_directory_path() / ("lmx-session-" + std::to_string(::getpid()) + "-" + name);
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

TEST_F(ChatSessionTest, SaveAndRestoreContinueExactlyWhereTheSessionWas) {
  generate::GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 20;
  generate::ChatSession a(stories_container(), "", p);
  const std::string r1 = a.respond("Once upon a time");
  const fs::path file = temp_file("saved.safetensors");
  a.save(file);
  const std::string r2 = a.respond("Lily");
  EXPECT_GE(a.last_info().cached_prompt_tokens, 5);

  generate::ChatSession b(stories_container(), "", p);
  b.restore(file);
  ASSERT_EQ(b.history().size(), 2u);
  EXPECT_EQ(b.history()[1]["content"].get<std::string>(), r1);
  // The restored cache is reused: the same reply, and the earlier turn is not prefilled again.
  EXPECT_EQ(b.respond("Lily"), r2);
  EXPECT_EQ(b.last_info().cached_prompt_tokens, a.last_info().cached_prompt_tokens);
  EXPECT_EQ(r2, fresh_reply("Once upon a time\n" + r1 + "\nLily", p));

  // A session saved before any turn restores to an empty one.
  generate::ChatSession empty(stories_container(), "", p);
  empty.save(file);
  b.restore(file);
  EXPECT_EQ(b.history().size(), 0u);
  EXPECT_EQ(b.respond("Once upon a time"), r1);
  fs::remove(file);
}

TEST_F(ChatSessionTest, RestoreRefusesOtherModelsAndMalformedFiles) {
  generate::GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 4;
  generate::ChatSession a(stories_container(), "", p);
  a.respond("Once upon a time");
  const fs::path file = temp_file("other.safetensors");
  a.save(file);
  // Same weights, but config.json differs: another model as far as the file can tell.
  auto other = import_stories("other", [](const fs::path& dir) {
    nlohmann::json cfg;
    std::ifstream(dir / "config.json") >> cfg;
    cfg["lmx_test_marker"] = 1;
    std::ofstream(dir / "config.json") << cfg.dump();
  });
  generate::ChatSession b(other, "", p);
  EXPECT_THROW(b.restore(file), InvalidArgument);
  EXPECT_EQ(b.history().size(), 0u);  // a refused restore changes nothing

  // Issue 22: the fingerprint is of the weights, not of the path. The same model
  // imported into another folder is accepted; the same config.json with other weights
  // (cast to bfloat16) is refused.
  generate::ChatSession same(import_stories("same"), "", p);
  same.restore(file);
  EXPECT_EQ(same.history().size(), 2u);
  auto bf16 = import_stories("bf16", [](const fs::path& dir) {
    const fs::path tmp = dir.string() + "-bf16";
    auto loaded = models::load_model(dir, {.prepare = false});
    models::SaveOptions o;
    o.dtype = Dtype::bf16;
    models::save_model(*loaded.model, dir, tmp, o);
    fs::copy_file(tmp / "model.safetensors", dir / "model.safetensors", fs::copy_options::overwrite_existing);
    fs::remove_all(tmp);
  });
  generate::ChatSession c(bf16, "", p);
  try {
    c.restore(file);
    ADD_FAILURE() << "restored a session of other weights";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("saved with another model"), std::string::npos) << e.what();
  }
  EXPECT_EQ(c.history().size(), 0u);

  // Not a session file, and a truncated one.
  {
    std::ofstream(file, std::ios::binary | std::ios::trunc) << "not safetensors at all";
  }
  EXPECT_THROW(a.restore(file), FormatError);
  EXPECT_THROW(a.restore(temp_file("missing.safetensors")), Error);
  EXPECT_EQ(a.history().size(), 2u);  // still the conversation it had
  fs::remove(file);
}

TEST_F(ChatSessionTest, TemplateVariablesReachTheChatTemplate) {
  auto templated = import_stories("template", [](const fs::path& dir) {
    std::ofstream(dir / "chat_template.jinja")
        << "{% for m in messages %}{{ m.content }}{% if flavor %} {{ flavor }}{% endif %}\n{% endfor %}";
  });
  generate::GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 12;
  generate::ChatSession session(templated, "", p);
  session.set_template_context({{"flavor", "Lily"}});
  const std::string reply = session.respond("Once upon a time");
  // The template writes its own special tokens: no BOS is added to the rendered text
  // (trim_blocks drops the newline after endif, as transformers renders it).
  generate::GenerateOptions o;
  o.eos_ids = templated->eos_ids();
  generate::Generation gen(templated->model(), templated->tokenizer(),
                           templated->tokenizer().encode("Once upon a time Lily", false), p, o);
  std::string expected;
  while (auto e = gen.next())
    if (e->kind == generate::GenerationEvent::Kind::text) expected += e->text;
  EXPECT_EQ(reply, expected);
  EXPECT_THROW(session.set_template_context(nlohmann::ordered_json::array()), InvalidArgument);
}

TEST_F(ChatSessionTest, PrefillProgressIsReported) {
  generate::GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = 2;
  p.prefill_step_size = 4;
  generate::ChatSession session(stories_container(), "", p);
  std::vector<std::pair<int64_t, int64_t>> calls;
  session.set_prefill_progress([&](int64_t done, int64_t total) { calls.emplace_back(done, total); });
  session.respond("Once upon a time there was a little girl named Lily");
  ASSERT_GE(calls.size(), 2u);
  EXPECT_EQ(calls.back().first, calls.back().second);
  for (size_t i = 1; i < calls.size(); ++i) EXPECT_GT(calls[i].first, calls[i - 1].first);
}

}  // namespace
}  // namespace lmx
