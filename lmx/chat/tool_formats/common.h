// Helpers shared by the tool-call format parsers (not public API).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmx/chat/tool_call_parser.h"

namespace lmx::chat::detail {

using Json = nlohmann::ordered_json;

// A region ends right after the first of `ends`; searching resumes where it stopped.
class EndMarkerScanner : public RegionScanner {
 public:
  EndMarkerScanner(std::vector<std::string> ends, size_t marker_size, bool complete_at_eos = false)
      : ends_(std::move(ends)), from_(marker_size), complete_at_eos_(complete_at_eos) {}
  std::optional<size_t> end(std::string_view region) override;
  bool complete_at_end_of_stream() const override { return complete_at_eos_; }

 private:
  std::vector<std::string> ends_;
  size_t from_;
  bool complete_at_eos_;
};

// Finds the end of one JSON object or array starting at or after `from` (after
// whitespace), incrementally: brackets are counted outside strings. When something
// other than `{` / `[` comes first, the value "ends" there (the parse then fails and
// the call is rejected instead of swallowing the rest of the stream).
class JsonValueEnd {
 public:
  explicit JsonValueEnd(size_t from = 0) : pos_(from) {}
  std::optional<size_t> advance(std::string_view text);

 private:
  size_t pos_;
  int depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
};

std::string_view trim(std::string_view s);
bool starts_with(std::string_view s, std::string_view prefix);
// The text after `marker` at the start of `region` (which must begin with it), up to
// the first of `ends` (or the whole rest when none is found).
std::string_view region_body(std::string_view region, std::string_view marker, const std::vector<std::string>& ends);
// The marker among `markers` that `region` starts with (the longest); throws if none.
std::string_view leading_marker(std::string_view region, const std::vector<std::string>& markers);

// JSON text -> value; throws ToolCallParseError naming `what` and nlohmann's reason, or
// the nesting limit (check_json_nesting: model output nested 200000 deep parsed, and the
// first copy of its arguments overflowed the stack).
Json parse_json(std::string_view text, std::string_view what);
// JSON text -> value, or a discarded value when the text is not JSON or nests deeper than
// check_json_nesting allows. Never throws.
Json try_parse_json(std::string_view text);
// {"name", "arguments" | "parameters", "id"?} -> call; arguments given as JSON text are
// decoded. Throws ToolCallParseError.
ToolCall call_from_json(const Json& object);
// One call object or a JSON list of them -> calls, in order. Throws.
std::vector<ToolCall> calls_from_json(const Json& object_or_list);
// An arguments value that must be an object: JSON text is decoded. Throws.
Json arguments_object(const Json& arguments, std::string_view tool);

// The JSON type names `schema` admits ("type", enum values, anyOf / oneOf / allOf);
// empty for no schema.
std::vector<std::string> schema_types(const Json* schema);
// The schema of `tool`'s parameter `name` when it declares a type (schema_types not
// empty), else nullptr: literals written with their own type (Python, Gemma) are
// converted only then.
const Json* typed_parameter(const ToolSchemas& schemas,
                            std::string_view tool,
                            std::string_view name);
// A parameter value given as text (xml-like formats, LFM2 and Gemma scalars): converted
// to the declared schema type when one is declared (integer / number, boolean,
// object / array in that order, then string), else parsed as JSON when valid JSON, else
// kept as the string.
Json convert_text_value(std::string_view text, const Json* schema);

// Blocks `OPEN_PREFIX attribute OPEN_SUFFIX body CLOSE` of xml-like formats, in order.
// A block without CLOSE ends at the next OPEN_PREFIX (or the end): models drop closing
// tags now and then.
struct TagBlock {
  std::string_view attribute;
  std::string_view body;
};
std::vector<TagBlock> tag_blocks(std::string_view text,
                                 std::string_view open_prefix,
                                 std::string_view open_suffix,
                                 std::string_view close);
// Removes one leading and one trailing newline (Qwen3-Coder puts values on own lines).
std::string_view strip_one_newline(std::string_view s);
// The declared arguments of the tool `name` converted from text values.
Json text_arguments(const std::vector<TagBlock>& params, std::string_view tool, const ToolSchemas& schemas,
                    bool strip_newlines);

// Cursor over a hand-parsed value syntax (Python literals, Gemma values): position,
// errors that name the syntax and offset, and a nesting guard.
class TextReader {
 protected:
  TextReader(std::string_view text, std::string_view syntax) : s_(text), syntax_(syntax) {}

  [[noreturn]] void fail(const std::string& what) const;
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws();
  // After a list item: consumes `,` (and blanks) or stops before `close`; else fails.
  void separator(char close);
  // Counts one nesting level for the lifetime of the returned guard; nesting deeper
  // than any real argument is an error, not a stack overflow.
  struct DepthGuard {
    int& depth;
    ~DepthGuard() { --depth; }
  };
  [[nodiscard]] DepthGuard nest();

  std::string_view s_;
  size_t pos_ = 0;

 private:
  static constexpr int kMaxDepth = 256;
  std::string_view syntax_;
  int depth_ = 0;
};

}  // namespace lmx::chat::detail
