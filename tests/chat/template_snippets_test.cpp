// Engine cases on small templates; expected outputs and errors come from Python
// jinja2 with the transformers environment (tests/data/chat/snippets.json, written
// by tools/fixtures/render_templates.py).
#include "chat_fixtures.h"
#include "lmx/chat/json_value.h"
#include "lmx/chat/template.h"
#include "lmx/chat/template_error.h"

namespace lmx::chat {
namespace {

TEST(TemplateSnippets, MatchPythonJinja2) {
  auto data = testing::read_json(testing::fixture_dir() / "snippets.json");
  RenderOptions opts;
  opts.now = testing::fixed_now(data["fixed_now"].get<std::string>());
  int ok = 0, total = 0;
  for (const auto& s : data["snippets"]) {
    ++total;
    const std::string name = s["name"].get<std::string>();
    const std::string src = s["template"].get<std::string>();
    Value ctx = value_from_json(s["context"]);
    if (s.contains("output")) {
      try {
        std::string got = Template(src).render(ctx, opts);
        std::string want = s["output"].get<std::string>();
        if (got == want) {
          ++ok;
        } else {
          ADD_FAILURE() << name << ":\n  want " << nlohmann::json(want).dump() << "\n  got  "
                        << nlohmann::json(got).dump();
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << name << ": unexpected error: " << e.what();
      }
      continue;
    }
    const std::string type = s["error"]["type"].get<std::string>();
    const std::string message = s["error"]["message"].get<std::string>();
    try {
      std::string got = Template(src).render(ctx, opts);
      ADD_FAILURE() << name << ": expected " << type << " '" << message << "', rendered " << nlohmann::json(got).dump();
    } catch (const TemplateRaisedError& e) {
      EXPECT_EQ(type, "TemplateError") << name;
      EXPECT_EQ(message, e.what()) << name;
      ++ok;
    } catch (const TemplateSyntaxError& e) {
      EXPECT_EQ(type, "TemplateSyntaxError") << name << ": " << e.what();
      EXPECT_GT(e.line(), 0);
      ++ok;
    } catch (const TemplateSecurityError& e) {
      EXPECT_EQ(type, "SecurityError") << name << ": " << e.what();
      EXPECT_EQ(message, e.message()) << name;
      ++ok;
    } catch (const TemplateRuntimeError& e) {
      EXPECT_NE(type, "TemplateSyntaxError") << name << ": " << e.what();
      EXPECT_NE(type, "TemplateError") << name << ": " << e.what();
      // jinja2 reports unknown filters at compile time with other wording.
      if (type != "TemplateAssertionError") {
        EXPECT_EQ(message, e.message()) << name;
      }
      ++ok;
    }
  }
  std::printf("[snippets] %d/%d match Python jinja2\n", ok, total);
}

}  // namespace
}  // namespace lmx::chat
