// ChatTemplate API: template selection, special tokens, parse cache.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "chat_fixtures.h"
#include "lmx/chat/chat_template.h"
#include "lmx/chat/template_error.h"

namespace lmx::chat {
namespace {

using nlohmann::ordered_json;

TEST(ChatTemplateSelect, StringListAndToolUse) {
  ordered_json config = ordered_json::parse(R"({"chat_template": [
      {"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]})");
  EXPECT_EQ(select_chat_template(config, false).text, "D");
  EXPECT_EQ(select_chat_template(config, true).text, "T");
  ordered_json only_default = ordered_json::parse(R"({"chat_template": [{"name": "default", "template": "D"}]})");
  EXPECT_EQ(select_chat_template(only_default, true).text, "D");
  EXPECT_EQ(select_chat_template(ordered_json::parse(R"({"chat_template": "S"})"), true).text, "S");
  EXPECT_THROW(select_chat_template(ordered_json::parse(R"({"bos_token": "x"})"), false), FormatError);
  EXPECT_THROW(select_chat_template(ordered_json::parse(R"({"chat_template": [{"name": "rag", "template": "R"}]})"),
                                    false),
               FormatError);
}

TEST(ChatTemplateSelect, ModelFolderPrefersJinjaFile) {
  auto dir = std::filesystem::temp_directory_path() / ("lmx_chat_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir / "tokenizer_config.json") << R"({"chat_template": "from config", "bos_token": {"content": "<s>"}})";
  }
  EXPECT_EQ(select_chat_template(dir, false).text, "from config");
  { std::ofstream(dir / "chat_template.jinja") << "from jinja"; }
  auto src = select_chat_template(dir, false);
  EXPECT_EQ(src.text, "from jinja");
  EXPECT_NE(src.origin.find("chat_template.jinja"), std::string::npos);
  std::filesystem::remove_all(dir);
  EXPECT_THROW(select_chat_template(dir, false), IoError);
}

TEST(ChatTemplateSelect, SpecialTokensFromConfig) {
  LMX_REQUIRE_SHARED(testing::corpus_dir() / "mistral.rs" / "vicuna.json");
  auto config = testing::read_json(testing::corpus_dir() / "mistral.rs" / "vicuna.json");
  SpecialTokens t = special_tokens_from_config(config);
  ASSERT_GE(t.size(), 2u);
  EXPECT_EQ(t[0].first, "bos_token");
  EXPECT_EQ(t[0].second, config["bos_token"].is_string() ? config["bos_token"].get<std::string>()
                                                          : config["bos_token"]["content"].get<std::string>());
}

TEST(ChatTemplateRender, ContextVariables) {
  ChatTemplate t(
      "{{ bos_token }}{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}"
      "{{ tools is none }}{{ documents is none }}{{ add_generation_prompt }}{{ enable_thinking }}");
  ordered_json messages = ordered_json::parse(R"([{"role": "user", "content": "hi"}])");
  ChatRenderOptions opts;
  opts.add_generation_prompt = false;
  EXPECT_EQ(t.render(messages, nullptr, ordered_json::parse(R"({"enable_thinking": false})"), {{"bos_token", "<s>"}},
                     opts),
            "<s>[user:hi]TrueTrueFalseFalse");
  EXPECT_THROW(t.render(ordered_json::object(), nullptr, nullptr, {}), InvalidArgument);
}

TEST(ChatTemplateRender, ContinueFinalMessage) {
  ChatTemplate t("{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>\n{% endfor %}");
  ordered_json messages =
      ordered_json::parse(R"([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "Partial ans "}])");
  ChatRenderOptions opts;
  opts.add_generation_prompt = false;
  opts.continue_final_message = true;
  EXPECT_EQ(t.render(messages, nullptr, nullptr, {}, opts), "<user>Q</user>\n<assistant>Partial ans ");
}

TEST(ChatTemplateVariables, ParsesJsonOrString) {
  EXPECT_EQ(parse_template_variable("enable_thinking=false").second, ordered_json(false));
  EXPECT_EQ(parse_template_variable("n=3").second, ordered_json(3));
  EXPECT_EQ(parse_template_variable("name=Ada Lovelace").second, ordered_json("Ada Lovelace"));
  EXPECT_EQ(parse_template_variable("x={\"a\": [1]}").second["a"][0], 1);
  EXPECT_EQ(parse_template_variable("eq=a=b").second, ordered_json("a=b"));
  EXPECT_EQ(parse_template_variable("empty=").second, ordered_json(""));
  EXPECT_THROW(parse_template_variable("novalue"), InvalidArgument);
  EXPECT_THROW(parse_template_variable("=x"), InvalidArgument);
}

// One parsed template rendered from several threads at once gives the same prompts as
// a single thread (parsed templates are immutable; render state is per call).
TEST(ChatTemplateRender, ConcurrentRendersOfOneTemplate) {
  LMX_REQUIRE_SHARED(testing::corpus_dir() / "llama.cpp" / "Qwen-Qwen2.5-7B-Instruct.jinja");
  auto convs = testing::read_json(testing::fixture_dir() / "conversations.json");
  auto src = testing::read_text(testing::corpus_dir() / "llama.cpp" / "Qwen-Qwen2.5-7B-Instruct.jinja");
  ChatTemplateCache cache;
  auto tmpl = cache.get(src);
  std::vector<std::string> want;
  std::vector<const ordered_json*> chats;
  for (auto it = convs["conversations"].begin(); it != convs["conversations"].end(); ++it) {
    if (it.value().value("continue_final_message", false)) continue;
    chats.push_back(&it.value());
    const auto& c = it.value();
    ChatRenderOptions opts;
    opts.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    try {
      want.push_back(tmpl->render(c["messages"], c.value("tools", ordered_json()), c.value("extra", ordered_json()),
                                  {{"eos_token", "</s>"}}, opts));
    } catch (const std::exception& e) {
      want.push_back(std::string("error: ") + e.what());
    }
  }
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 25; ++round) {
        for (size_t i = 0; i < chats.size(); ++i) {
          size_t k = (i + static_cast<size_t>(t)) % chats.size();
          const auto& c = *chats[k];
          ChatRenderOptions opts;
          opts.add_generation_prompt = c["add_generation_prompt"].get<bool>();
          std::string got;
          try {
            got = cache.get(src)->render(c["messages"], c.value("tools", ordered_json()),
                                         c.value("extra", ordered_json()), {{"eos_token", "</s>"}}, opts);
          } catch (const std::exception& e) {
            got = std::string("error: ") + e.what();
          }
          if (got != want[k]) ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(ChatTemplateCacheTest, ParsesOnce) {
  ChatTemplateCache cache;
  auto a = cache.get("{{ 1 }}");
  auto b = cache.get("{{ 1 }}");
  auto c = cache.get("{{ 2 }}");
  EXPECT_EQ(a.get(), b.get());
  EXPECT_NE(a.get(), c.get());
  EXPECT_EQ(cache.size(), 2u);
}

}  // namespace
}  // namespace lmx::chat
