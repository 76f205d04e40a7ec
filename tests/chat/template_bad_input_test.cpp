// Hostile templates end with a clear, typed error within the render limits.
#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "lmx/chat/template.h"
#include "lmx/chat/template_error.h"

namespace lmx::chat {
namespace {

std::string render(const std::string& src, const RenderOptions& opts = {}) {
  return Template(src).render(Value::dict({}), opts);
}

TEST(TemplateBadInput, RecursiveMacroHitsDepthLimit) {
  try {
    render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
    FAIL() << "expected TemplateLimitError";
  } catch (const TemplateLimitError& e) {
    EXPECT_NE(std::string(e.what()).find("recursion depth"), std::string::npos) << e.what();
    EXPECT_EQ(e.line(), 1);
  }
}

TEST(TemplateBadInput, RecursiveLoopHitsDepthLimit) {
  EXPECT_THROW(render("{% set t = [[[[[[]]]]]] %}{% for x in [t] recursive %}{{ loop([x]) }}{% endfor %}"),
               TemplateLimitError);
}

TEST(TemplateBadInput, DeepParenthesesAreASyntaxError) {
  std::string src = "{{ " + std::string(150, '(') + "1" + std::string(150, ')') + " }}";
  try {
    render(src);
    FAIL() << "expected TemplateSyntaxError";
  } catch (const TemplateSyntaxError& e) {
    EXPECT_EQ(e.line(), 1);
    EXPECT_GT(e.column(), 1);
    EXPECT_NE(std::string(e.what()).find("nested too deeply"), std::string::npos) << e.what();
  }
  // Moderate nesting still works.
  EXPECT_EQ(render("{{ " + std::string(40, '(') + "1 + 2" + std::string(40, ')') + " }}"), "3");
}

TEST(TemplateBadInput, HugeNestedLoopsHitTheIterationLimit) {
  // The wall-clock limit is lifted so that only the iteration count can end the render
  // (under the sanitizers 10 million iterations outlast the default 5 s, and CI failed).
  RenderOptions opts;
  opts.limits.max_seconds = 1e9;
  opts.limits.max_loop_iterations = 1'000'000;
  try {
    render("{% for i in range(25000) %}{% for j in range(25000) %}{% endfor %}{% endfor %}", opts);
    FAIL() << "expected TemplateLimitError";
  } catch (const TemplateLimitError& e) {
    EXPECT_NE(std::string(e.what()).find("loop iterations"), std::string::npos) << e.what();
  }
}

TEST(TemplateBadInput, TimeLimit) {
  RenderOptions opts;
  opts.limits.max_loop_iterations = int64_t{1} << 40;
  opts.limits.max_seconds = 0.05;
  auto start = std::chrono::steady_clock::now();
  try {
    render("{% for i in range(20000) %}{% for j in range(20000) %}{% endfor %}{% endfor %}", opts);
    FAIL() << "expected TemplateLimitError";
  } catch (const TemplateLimitError& e) {
    EXPECT_NE(std::string(e.what()).find("time limit"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(TemplateBadInput, ExponentialMacroRecursionHitsTheTimeLimit) {
  RenderOptions opts;
  opts.limits.max_seconds = 0.2;
  try {
    render("{% macro m(n) %}{% if n > 0 %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(60) }}", opts);
    FAIL() << "expected TemplateLimitError";
  } catch (const TemplateLimitError& e) {
    EXPECT_NE(std::string(e.what()).find("time limit"), std::string::npos) << e.what();
  }
}

TEST(TemplateBadInput, HugeWidthsAndReplacementsHitTheSizeLimit) {
  RenderOptions opts;
  opts.limits.max_output_bytes = 1 << 20;
  for (const char* src : {
           "{{ 'x'|center(1000000000) }}",
           "{{ 'x'.ljust(1000000000) }}",
           "{{ 'x'.zfill(1000000000) }}",
           "{{ 'a\\nb'|indent(1000000000) }}",
           "{{ '{:1000000000}'.format(1) }}",
           "{{ '{:99999999999999999999999}'.format(1) }}",
           "{{ '%1000000000s' % 'x' }}",
           "{{ ('x' * 100000)|replace('', 'yyyyyyyyyy') }}",
           "{{ ('x' * 100000).replace('x', 'yyyyyyyyyyyyyyyyyyyyyyyyyyy') }}",
           "{{ [1]|tojson(indent=100000000) }}",
           "{{ [1]|batch(1000000000, 0)|list }}",
       }) {
    EXPECT_THROW(render(src, opts), TemplateLimitError) << src;
  }
}

TEST(TemplateBadInput, OutputSizeLimit) {
  RenderOptions opts;
  opts.limits.max_output_bytes = 1000;
  EXPECT_THROW(render("{% for i in range(100) %}0123456789abcdef{% endfor %}", opts), TemplateLimitError);
  EXPECT_THROW(render("{{ 'x' * 100000 }}", opts), TemplateLimitError);
  EXPECT_EQ(render("{% for i in range(10) %}0123456789{% endfor %}", opts).size(), 100u);
}

TEST(TemplateBadInput, RangeTooLargeIsRefused) {
  EXPECT_THROW(render("{{ range(100000000000)|length }}"), TemplateLimitError);
}

TEST(TemplateBadInput, SandboxBlocksInternals) {
  // Printing a forbidden attribute gives '' (as jinja2's sandbox); using it is an error.
  EXPECT_EQ(render("{{ ''.__class__ }}"), "");
  EXPECT_THROW(render("{{ ''.__class__.__mro__ }}"), TemplateSecurityError);
  EXPECT_THROW(render("{{ ''.__class__.__mro__[1].__subclasses__() }}"), TemplateSecurityError);
  EXPECT_THROW(render("{{ range.__globals__['os'] }}"), TemplateSecurityError);
  EXPECT_THROW(render("{{ raise_exception.__globals__.os.system('id') }}"), TemplateSecurityError);
  EXPECT_THROW(render("{{ namespace.__init__.__globals__ }}"), TemplateSecurityError);
  EXPECT_THROW(render("{{ cycler.__init__.__globals__.os }}"), TemplateRuntimeError);
  EXPECT_THROW(render("{% set l = [1] %}{{ l.append(2) }}"), TemplateSecurityError);
  EXPECT_THROW(render("{% set d = {} %}{{ d.update({'a': 1}) }}"), TemplateSecurityError);
  EXPECT_EQ(render("{{ [].mro }}|{{ {}.__class__ }}"), "|");
}

TEST(TemplateBadInput, LongChainsAndDeepBlocksAreSyntaxErrors) {
  std::string sum = "{{ 1";
  for (int i = 0; i < 20000; ++i) sum += " + 1";
  EXPECT_THROW(Template(sum + " }}"), TemplateSyntaxError);
  std::string filters = "{{ 'x'";
  for (int i = 0; i < 20000; ++i) filters += "|upper";
  EXPECT_THROW(Template(filters + " }}"), TemplateSyntaxError);
  std::string attrs = "{{ x";
  for (int i = 0; i < 20000; ++i) attrs += ".a";
  EXPECT_THROW(Template(attrs + " }}"), TemplateSyntaxError);
  std::string blocks;
  for (int i = 0; i < 20000; ++i) blocks += "{% if true %}";
  for (int i = 0; i < 20000; ++i) blocks += "{% endif %}";
  EXPECT_THROW(Template{blocks}, TemplateSyntaxError);
  EXPECT_THROW(Template("{{ " + std::string(20000, '[')), TemplateSyntaxError);
  // What real templates do stays well inside the limits.
  std::string ok = "{{ 'a'";
  for (int i = 0; i < 60; ++i) ok += " ~ 'a'";
  EXPECT_EQ(render(ok + " }}"), std::string(61, 'a'));
}

TEST(TemplateBadInput, DeepValuesAndCyclesAreLimited) {
  EXPECT_THROW(render("{% set ns = namespace(x=[]) %}{% for i in range(5000) %}{% set ns.x = [ns.x] %}{% endfor %}"),
               TemplateLimitError);
  EXPECT_THROW(render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}"), TemplateLimitError);
  EXPECT_THROW(render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns|tojson }}"), TemplateRuntimeError);
  EXPECT_THROW(render("{% macro m(n) %}{{ m(n) ~ m(n) }}{% endmacro %}{{ m(1) }}"), TemplateLimitError);
}

TEST(TemplateBadInput, SyntaxErrorsReportLineAndColumn) {
  struct Case {
    const char* src;
    int line, column;
  };
  const Case cases[] = {
      {"hello\n{{ 'x' ", 2, 8},
      {"a\nb\n  {% if x %}\n{% endfor %}", 4, 4},
      {"{% for x in %}", 1, 13},
      {"line1\n{{ 1 + }}", 2, 8},
      {"{{ x | }}", 1, 8},
      {"{% unknown %}", 1, 4},
      {"{{ 'unterminated }}", 1, 4},
      {"{% if true %}never closed", 1, 26},
  };
  for (const Case& c : cases) {
    try {
      Template t(c.src);
      ADD_FAILURE() << "no syntax error for " << c.src;
    } catch (const TemplateSyntaxError& e) {
      EXPECT_EQ(e.line(), c.line) << c.src << ": " << e.what();
      EXPECT_EQ(e.column(), c.column) << c.src << ": " << e.what();
    }
  }
}

}  // namespace
}  // namespace lmx::chat
