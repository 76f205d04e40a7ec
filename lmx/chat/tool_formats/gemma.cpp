// FunctionGemma: <start_function_call>call:f{k:1,s:<escape>text<escape>}<end_function_call>
// Gemma 4:       <|tool_call>call:f{k:1,s:<|"|>text<|"|>}<tool_call|>
// Keys are bare, strings sit between the escape token, other values are written as
// numbers, true/false, None/null, {..} and [..]. Models also write JSON-quoted keys and
// strings inside nested objects ({filters:{"city":"Paris"}}): those are JSON strings.
// With a declared schema, a top-level value takes its parameter's type, escaped or not
// (`<|"|>25<|"|>` is 25 for an integer), as mlx-swift-lm does.
#include <cctype>

#include "lmx/chat/tool_formats/common.h"
#include "lmx/chat/tool_formats/formats.h"

namespace lmx::chat::detail {

namespace {

struct GemmaSyntax {
  std::string start, end, quote;
};
const std::vector<GemmaSyntax> kSyntaxes = {
    {"<start_function_call>", "<end_function_call>", "<escape>"},
    {"<|tool_call>", "<tool_call|>", "<|\"|>"},
};

const GemmaSyntax& syntax_of(std::string_view marker) {
  for (const auto& s : kSyntaxes) {
    if (s.start == marker) return s;
  }
  throw ToolCallParseError("not a gemma tool-call marker: " + std::string(marker));
}

class GemmaValueReader : TextReader {
 public:
  GemmaValueReader(std::string_view text, std::string_view quote, const ToolSchemas& schemas)
      : TextReader(text, "gemma tool call"), quote_(quote), schemas_(schemas) {}

  // call:NAME{...} and nothing else.
  ToolCall call() {
    skip_ws();
    if (!starts_with(s_.substr(pos_), "call:")) fail("expected 'call:'");
    pos_ += 5;
    size_t brace = s_.find('{', pos_);
    if (brace == std::string_view::npos) fail("expected '{' after the name");
    ToolCall c;
    c.name = std::string(trim(s_.substr(pos_, brace - pos_)));
    if (c.name.empty()) fail("empty function name");
    pos_ = brace;
    c.arguments = object(&c.name);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected text after the arguments");
    return c;
  }

 private:
  bool at_quote() const { return s_.substr(pos_, quote_.size()) == quote_; }

  std::string quoted() {
    pos_ += quote_.size();
    size_t end = s_.find(quote_, pos_);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string out(s_.substr(pos_, end - pos_));
    pos_ = end + quote_.size();
    return out;
  }

  // A JSON-quoted string ("..." with JSON escapes).
  std::string json_string() {
    size_t end = pos_ + 1;
    for (; end < s_.size() && s_[end] != '"'; ++end) {
      if (s_[end] == '\\') ++end;
    }
    if (end >= s_.size()) fail("unterminated string");
    Json v = Json::parse(s_.substr(pos_, end + 1 - pos_), nullptr, /*allow_exceptions=*/false);
    if (v.is_discarded()) fail("bad JSON string");
    pos_ = end + 1;
    return v.get<std::string>();
  }

  // `tool` is set for the arguments object: its values are typed by the schema.
  Json object(const std::string* tool = nullptr) {
    ++pos_;  // '{'
    Json out = Json::object();
    skip_ws();
    while (pos_ < s_.size() && s_[pos_] != '}') {
      std::string key;
      if (at_quote()) {
        key = quoted();
      } else if (peek() == '"') {
        key = json_string();
      } else {
        size_t colon = s_.find(':', pos_);
        if (colon == std::string_view::npos) fail("expected ':' after a key");
        key = std::string(trim(s_.substr(pos_, colon - pos_)));
        pos_ = colon;
      }
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != ':') fail("expected ':' after key '" + key + "'");
      ++pos_;
      const Json* schema = tool ? typed_parameter(schemas_, *tool, key) : nullptr;
      out[key] = schema ? typed_value(*schema) : value();
      separator('}');
    }
    if (pos_ >= s_.size()) fail("unterminated '{'");
    ++pos_;
    return out;
  }

  Json typed_value(const Json& schema) {
    skip_ws();
    if (at_quote()) return convert_text_value(quoted(), &schema);
    if (peek() == '"') return convert_text_value(json_string(), &schema);
    if (peek() == '{' || peek() == '[') return value();
    return convert_text_value(word(), &schema);
  }

  // A value written without quotes, up to the next `,` `}` or `]`.
  std::string_view word() {
    size_t end = s_.find_first_of(",}]", pos_);
    if (end == std::string_view::npos) fail("unterminated value");
    std::string_view w = trim(s_.substr(pos_, end - pos_));
    pos_ = end;
    return w;
  }

  Json array() {
    ++pos_;  // '['
    Json out = Json::array();
    skip_ws();
    while (pos_ < s_.size() && s_[pos_] != ']') {
      out.push_back(value());
      separator(']');
    }
    if (pos_ >= s_.size()) fail("unterminated '['");
    ++pos_;
    return out;
  }

  Json value() {
    DepthGuard guard = nest();
    skip_ws();
    if (at_quote()) return quoted();
    if (peek() == '"') return json_string();
    if (peek() == '{') return object();
    if (peek() == '[') return array();
    std::string_view word = this->word();
    if (word == "true" || word == "True") return true;
    if (word == "false" || word == "False") return false;
    if (word == "null" || word == "None") return nullptr;
    Json number = Json::parse(word, nullptr, false);
    if (!number.is_discarded() && number.is_number()) return number;
    return std::string(word);  // a bare word the model did not quote
  }

  std::string_view quote_;
  const ToolSchemas& schemas_;
};

class GemmaParser : public ToolCallParser {
 public:
  ToolCallFormat format() const override { return ToolCallFormat::kGemma; }
  std::vector<std::string> start_markers() const override {
    std::vector<std::string> out;
    for (const auto& s : kSyntaxes) out.push_back(s.start);
    return out;
  }
  std::unique_ptr<RegionScanner> scanner(std::string_view marker) const override {
    return std::make_unique<EndMarkerScanner>(std::vector<std::string>{syntax_of(marker).end}, marker.size());
  }
  std::vector<ToolCall> parse(std::string_view region, const ToolSchemas& schemas) const override {
    const GemmaSyntax& syntax = syntax_of(leading_marker(region, start_markers()));
    std::string_view body = region_body(region, syntax.start, {syntax.end});
    return {GemmaValueReader(body, syntax.quote, schemas).call()};
  }
  // Gemma 4 thinks in <|channel>thought ... <channel|>.
  std::vector<std::string> reasoning_open_markers() const override { return {"<think>", "<|channel>"}; }
  std::vector<std::string> reasoning_close_markers() const override { return {"</think>", "<channel|>"}; }
};

}  // namespace

std::unique_ptr<ToolCallParser> make_gemma_parser() { return std::make_unique<GemmaParser>(); }

}  // namespace lmx::chat::detail
