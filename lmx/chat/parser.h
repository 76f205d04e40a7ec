// Template parser: tokens -> syntax tree (internal to lmx/chat).
#pragma once

#include <string_view>

#include "lmx/chat/ast.h"

namespace lmx::chat::detail {

// Nesting deeper than this (brackets, operator / filter chains, blocks) is a syntax
// error: it bounds the recursion of the parser, the renderer and the tree's destructor.
inline constexpr int kMaxParseDepth = 256;

// Throws TemplateSyntaxError with line and column.
ParsedTemplate parse_template(std::string_view source);

}  // namespace lmx::chat::detail
