#include "lmx/chat/tool_formats/python_literal.h"

#include <algorithm>
#include <cctype>
#include <iterator>
#include <optional>
#include <string>

#include "lmx/chat/lexer.h"
#include "lmx/chat/tool_formats/common.h"

namespace lmx::chat::detail {

namespace {

class PythonReader : TextReader {
 public:
  PythonReader(std::string_view text, const ToolSchemas& schemas)
      : TextReader(text, "python-style tool call"), schemas_(schemas) {}

  std::vector<ToolCall> calls() {
    std::vector<ToolCall> out;
    skip_ws();
    if (peek() == '[') {
      ++pos_;
      skip_ws();
      while (peek() != ']') {
        out.push_back(call());
        separator(']');
      }
      ++pos_;
    } else {
      out.push_back(call());
    }
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected text after the calls");
    return out;
  }

 private:
  void expect(char c) {
    skip_ws();
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  static bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

  std::string_view identifier(bool dotted) {
    size_t b = pos_;
    while (pos_ < s_.size() && (ident_char(s_[pos_]) || (dotted && s_[pos_] == '.') || (dotted && s_[pos_] == '-'))) {
      ++pos_;
    }
    if (b == pos_) fail("expected a name");
    return s_.substr(b, pos_ - b);
  }

  ToolCall call() {
    ToolCall c;
    c.name = std::string(identifier(/*dotted=*/true));
    if (c.name.size() > 5 && c.name.ends_with(".call")) c.name.resize(c.name.size() - 5);
    // The namespace templates show tools in (`functions.get_weather(...)`).
    if (c.name.size() > 10 && c.name.starts_with("functions.")) c.name.erase(0, 10);
    expect('(');
    skip_ws();
    while (peek() != ')') {
      if (pos_ >= s_.size()) fail("unterminated call of '" + c.name + "'");
      std::string key(identifier(/*dotted=*/false));
      skip_ws();
      if (peek() != '=') fail("positional argument in call of '" + c.name + "' (only keyword arguments name a parameter)");
      ++pos_;
      c.arguments[key] = argument(c.name, key);
      separator(')');
    }
    ++pos_;
    unwrap_arguments(c);
    return c;
  }

  // A top-level argument: typed by the declared schema when there is one.
  Json argument(const std::string& tool, const std::string& key) {
    const Json* schema = typed_parameter(schemas_, tool, key);
    skip_ws();
    char c = peek();
    if (c == '\'' || c == '"') {
      Json s = string_literal(c);
      return schema ? convert_text_value(s.get<std::string>(), schema) : s;
    }
    if (c == '[' || c == '(' || c == '{') return value();
    size_t b = pos_;
    size_t e = s_.find_first_of(",)", pos_);
    if (e == std::string_view::npos) fail("unterminated call of '" + tool + "'");
    std::string_view raw = trim(s_.substr(b, e - b));
    if (raw.empty()) fail("missing value of '" + key + "'");
    pos_ = e;
    if (schema) return convert_text_value(raw, schema);
    PythonReader literal(raw, schemas_);
    if (std::optional<Json> v = literal.whole_value()) return *v;
    return std::string(raw);  // a bare word the model did not quote
  }

  // The text as one literal, or nullopt when it is not one.
  std::optional<Json> whole_value() {
    try {
      Json v = value();
      skip_ws();
      if (pos_ == s_.size()) return v;
    } catch (const ToolCallParseError&) {
    }
    return std::nullopt;
  }

  void unwrap_arguments(ToolCall& c) const {
    if (c.arguments.size() != 1) return;
    auto only = c.arguments.begin();
    static constexpr std::string_view kWrappers[] = {"properties", "parameters", "arguments",
                                                     "args", "kwargs"};
    bool wrapper =
        std::find(std::begin(kWrappers), std::end(kWrappers), only.key()) != std::end(kWrappers);
    if (!wrapper || !only->is_object() || schemas_.parameter(c.name, only.key())) return;
    Json inner = *only;
    c.arguments = std::move(inner);
  }

  Json value() {
    DepthGuard guard = nest();
    skip_ws();
    char c = peek();
    if (c == '\'' || c == '"') return string_literal(c);
    if (c == '[' || c == '(') return sequence(c == '[' ? ']' : ')');
    if (c == '{') return dict();
    if (c == '-' || c == '+' || c == '.' || std::isdigit(static_cast<unsigned char>(c))) return number();
    std::string_view word = identifier(/*dotted=*/false);
    if (word == "True" || word == "true") return true;
    if (word == "False" || word == "false") return false;
    if (word == "None" || word == "null") return nullptr;
    fail("unknown value '" + std::string(word) + "'");
  }

  Json number() {
    size_t b = pos_;
    if (peek() == '-' || peek() == '+') ++pos_;
    while (pos_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '.' ||
                                ((s_[pos_] == '-' || s_[pos_] == '+') && (s_[pos_ - 1] == 'e' || s_[pos_ - 1] == 'E')))) {
      ++pos_;
    }
    std::string text(s_.substr(b, pos_ - b));
    if (!text.empty() && text[0] == '+') text.erase(0, 1);
    if (!text.empty() && text[0] == '.') text = std::string("0") + text;
    if (text.size() > 1 && text.back() == '.') text += "0";
    Json v = Json::parse(text, nullptr, false);
    if (v.is_discarded() || !v.is_number()) fail("bad number '" + text + "'");
    return v;
  }

  // Lenient: see the header.
  bool closes_here(size_t quote_pos) const {
    size_t p = quote_pos + 1;
    while (p < s_.size() && std::isspace(static_cast<unsigned char>(s_[p]))) ++p;
    return p == s_.size() || s_[p] == ',' || s_[p] == ')' || s_[p] == ']' || s_[p] == '}' || s_[p] == ':';
  }

  Json string_literal(char quote) {
    ++pos_;
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) fail("unterminated string");
      char c = s_[pos_];
      if (c == quote && closes_here(pos_)) {
        ++pos_;
        return out;
      }
      if (c == '\\' && pos_ + 1 < s_.size()) {
        const size_t used = decode_escape(s_, pos_ + 1, out);
        if (used == 0) {
          out += '\\';  // a malformed \x / \u escape is kept as written
          ++pos_;
        } else {
          pos_ += 1 + used;
        }
        continue;
      }
      out += c;
      ++pos_;
    }
  }

  Json sequence(char close) {
    ++pos_;
    Json out = Json::array();
    skip_ws();
    while (peek() != close) {
      if (pos_ >= s_.size()) fail("unterminated list");
      out.push_back(value());
      separator(close);
    }
    ++pos_;
    return out;
  }

  Json dict() {
    ++pos_;
    Json out = Json::object();
    skip_ws();
    while (peek() != '}') {
      if (pos_ >= s_.size()) fail("unterminated dict");
      Json key = value();
      expect(':');
      out[key.is_string() ? key.get<std::string>() : key.dump()] = value();
      separator('}');
    }
    ++pos_;
    return out;
  }

  const ToolSchemas& schemas_;
};

}  // namespace

std::vector<ToolCall> parse_python_calls(std::string_view text, const ToolSchemas& schemas) {
  return PythonReader(text, schemas).calls();
}

}  // namespace lmx::chat::detail
