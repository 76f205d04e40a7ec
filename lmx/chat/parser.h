// Template parser: tokens -> syntax tree (internal to lmx/chat).
#pragma once

#include <string_view>

#include "lmx/chat/ast.h"

namespace lmx::chat::detail {

// Expression nesting deeper than this is a syntax error (bounds parser recursion).
inline constexpr int kMaxParseDepth = 100;

// Throws TemplateSyntaxError with line and column.
ParsedTemplate parse_template(std::string_view source);

}  // namespace lmx::chat::detail
