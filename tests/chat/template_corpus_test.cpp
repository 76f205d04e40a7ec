// Every template of ../shared/data/chat-templates over the fixture conversations must
// render byte for byte as Python jinja2 with the transformers environment did
// (tools/fixtures/render_templates.py), or fail where it failed with the same kind of
// error and the same message.
#include <string>
#include <vector>

#include "chat_fixtures.h"
#include "lmx/chat/chat_template.h"
#include "lmx/chat/json_value.h"
#include "lmx/chat/template_error.h"

namespace lmx::chat {
namespace {

using testing::corpus_dir;
using testing::fixture_dir;
using testing::read_json;
using testing::read_text;

struct Tally {
  int outputs = 0, outputs_ok = 0, errors = 0, errors_ok = 0;
};

std::string first_difference(const std::string& want, const std::string& got) {
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  size_t from = i > 60 ? i - 60 : 0;
  return "first difference at byte " + std::to_string(i) + "\n  want: ..." + nlohmann::json(want.substr(from, 160)).dump() +
         "\n  got:  ..." + nlohmann::json(got.substr(from, 160)).dump();
}

void check_folder(const std::string& folder, Tally* tally) {
  auto dir = corpus_dir() / folder;
  LMX_REQUIRE_SHARED(dir);
  auto convs = read_json(fixture_dir() / "conversations.json");
  auto expected = read_json(fixture_dir() / "expected" / (folder + ".json"));
  SpecialTokens special;
  for (auto it = convs["special_tokens"].begin(); it != convs["special_tokens"].end(); ++it)
    special.emplace_back(it.key(), it.value().get<std::string>());
  ChatRenderOptions base;
  base.render.now = testing::fixed_now(convs["fixed_now"].get<std::string>());

  for (auto it = expected["templates"].begin(); it != expected["templates"].end(); ++it) {
    const std::string name = it.key();
    const auto& entry = it.value();
    std::string source;
    if (name.size() > 5 && name.substr(name.size() - 5) == ".json") {
      source = select_chat_template(read_json(dir / name), false, name).text;
    } else {
      source = read_text(dir / name);
    }
    ASSERT_FALSE(entry.contains("parse_error")) << name << ": jinja2 could not parse it";
    std::unique_ptr<ChatTemplate> tmpl;
    try {
      tmpl = std::make_unique<ChatTemplate>(source);
    } catch (const std::exception& e) {
      ADD_FAILURE() << folder << "/" << name << ": parse failed: " << e.what();
      continue;
    }
    for (auto rit = entry["results"].begin(); rit != entry["results"].end(); ++rit) {
      const std::string conv_name = rit.key();
      const auto& want = rit.value();
      const auto& conv = convs["conversations"][conv_name];
      ChatRenderOptions opts = base;
      opts.add_generation_prompt = conv["add_generation_prompt"].get<bool>();
      opts.continue_final_message = conv.value("continue_final_message", false);
      nlohmann::ordered_json tools = conv.contains("tools") ? conv["tools"] : nlohmann::ordered_json();
      nlohmann::ordered_json extra = conv.contains("extra") ? conv["extra"] : nlohmann::ordered_json();
      std::string label = folder + "/" + name + " x " + conv_name;
      if (want.contains("output")) {
        ++tally->outputs;
        try {
          std::string got = tmpl->render(conv["messages"], tools, extra, special, opts);
          const std::string w = want["output"].get<std::string>();
          if (got == w) {
            ++tally->outputs_ok;
          } else {
            ADD_FAILURE() << label << ": " << first_difference(w, got);
          }
        } catch (const std::exception& e) {
          ADD_FAILURE() << label << ": unexpected error: " << e.what();
        }
      } else {
        ++tally->errors;
        const std::string type = want["error"]["type"].get<std::string>();
        const std::string message = want["error"]["message"].get<std::string>();
        try {
          std::string got = tmpl->render(conv["messages"], tools, extra, special, opts);
          ADD_FAILURE() << label << ": expected " << type << " (" << message << "), rendered "
                        << nlohmann::json(got.substr(0, 200)).dump();
        } catch (const TemplateRaisedError& e) {
          // raise_exception: the message must be exactly the template's.
          if (type == "TemplateError" && message == e.what()) {
            ++tally->errors_ok;
          } else {
            ADD_FAILURE() << label << ": raised '" << e.what() << "', want " << type << " '" << message << "'";
          }
        } catch (const TemplateSecurityError& e) {
          if (type == "SecurityError" && message == e.message()) {
            ++tally->errors_ok;
          } else {
            ADD_FAILURE() << label << ": security error '" << e.what() << "', want " << type << " '" << message << "'";
          }
        } catch (const TemplateLimitError& e) {
          ADD_FAILURE() << label << ": limit hit '" << e.what() << "', want " << type << " '" << message << "'";
        } catch (const TemplateRuntimeError& e) {
          // UndefinedError, TypeError, ...: the same failure with Python's message.
          if (type != "TemplateError" && type != "SecurityError" && type != "ValueError" &&
              message == e.message()) {
            ++tally->errors_ok;
          } else {
            ADD_FAILURE() << label << ": got error '" << e.what() << "', want " << type << " '" << message << "'";
          }
        } catch (const InvalidArgument& e) {
          // continue_final_message could not find the final message (ValueError in transformers).
          if (type == "ValueError" && message == e.what()) {
            ++tally->errors_ok;
          } else {
            ADD_FAILURE() << label << ": got '" << e.what() << "', want " << type << " '" << message << "'";
          }
        }
      }
    }
  }
}

// Real model folders (../shared/data/tokenizers): the template is chosen per
// conversation by select_chat_template(dir, has_tools) and the special tokens come
// from the folder's tokenizer_config.json.
TEST(ModelFolders, SelectionSpecialTokensAndRendering) {
  auto root = testing::source_dir() / ".." / "shared" / "data" / "tokenizers";
  LMX_REQUIRE_SHARED(root);
  auto convs = read_json(fixture_dir() / "conversations.json");
  auto expected = read_json(fixture_dir() / "expected" / "model-folders.json");
  ChatTemplateCache cache;
  int total = 0, ok = 0;
  for (auto it = expected["folders"].begin(); it != expected["folders"].end(); ++it) {
    auto dir = root / it.key();
    SpecialTokens special;
    if (std::filesystem::exists(dir / "tokenizer_config.json"))
      special = special_tokens_from_config(read_json(dir / "tokenizer_config.json"));
    SpecialTokens want_special;
    for (auto t = it.value()["special_tokens"].begin(); t != it.value()["special_tokens"].end(); ++t)
      want_special.emplace_back(t.key(), t.value().get<std::string>());
    EXPECT_EQ(special, want_special) << it.key();
    for (auto rit = it.value()["results"].begin(); rit != it.value()["results"].end(); ++rit) {
      ++total;
      const auto& conv = convs["conversations"][rit.key()];
      const auto& want = rit.value();
      ChatRenderOptions opts;
      opts.render.now = testing::fixed_now(convs["fixed_now"].get<std::string>());
      opts.add_generation_prompt = conv["add_generation_prompt"].get<bool>();
      opts.continue_final_message = conv.value("continue_final_message", false);
      nlohmann::ordered_json tools = conv.contains("tools") ? conv["tools"] : nlohmann::ordered_json();
      nlohmann::ordered_json extra = conv.contains("extra") ? conv["extra"] : nlohmann::ordered_json();
      std::string label = it.key() + " x " + rit.key();
      try {
        auto tmpl = cache.get(select_chat_template(dir, !tools.is_null()).text);
        std::string got = tmpl->render(conv["messages"], tools, extra, special, opts);
        if (want.contains("output") && got == want["output"].get<std::string>()) {
          ++ok;
        } else {
          ADD_FAILURE() << label << ": rendered, want " << want.dump().substr(0, 300);
        }
      } catch (const TemplateRaisedError& e) {
        if (want.contains("error") && want["error"]["type"] == "TemplateError" && want["error"]["message"] == e.what()) {
          ++ok;
        } else {
          ADD_FAILURE() << label << ": raised '" << e.what() << "', want " << want.dump().substr(0, 300);
        }
      } catch (const TemplateRuntimeError& e) {
        if (want.contains("error") && want["error"]["type"] != "TemplateError" &&
            want["error"]["message"] == e.message()) {
          ++ok;
        } else {
          ADD_FAILURE() << label << ": error '" << e.what() << "', want " << want.dump().substr(0, 300);
        }
      }
    }
  }
  std::printf("[model folders] %d/%d renders identical (%zu folders, %zu parsed templates)\n", ok, total,
              static_cast<size_t>(expected["folders"].size()), cache.size());
  EXPECT_GT(total, 0);
}

class CorpusTest : public ::testing::TestWithParam<const char*> {};

TEST_P(CorpusTest, MatchesPythonJinja2) {
  Tally t;
  check_folder(GetParam(), &t);
  std::printf("[corpus %s] outputs %d/%d identical, errors %d/%d identical (kind and message)\n", GetParam(),
              t.outputs_ok, t.outputs, t.errors_ok, t.errors);
  EXPECT_GT(t.outputs, 0);
}

INSTANTIATE_TEST_SUITE_P(Folders, CorpusTest,
                         ::testing::Values("llama.cpp", "hf-ollama-utils-gguf", "mistral-common", "mistral.rs"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

}  // namespace
}  // namespace lmx::chat
