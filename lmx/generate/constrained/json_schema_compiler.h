// JSON schema -> grammar (internal to constrained decoding). The subset OpenAI's strict
// structured outputs use: type (one or a list), object properties / required /
// additionalProperties, array items / minItems / maxItems, string minLength / maxLength,
// number, integer, boolean, null, enum, const, anyOf, $ref into the document ($defs,
// definitions, "#"), recursion included. Annotations (title, description, default,
// examples, $schema, $id, $comment, deprecated, readOnly, writeOnly) are ignored; any
// other keyword throws lmx::Unsupported naming it and where it is, and a malformed or
// hostile schema (too deep, too many enum values, a recursion with no finite value)
// throws lmx::InvalidArgument naming the place.
//
// What is generated: compact JSON (no whitespace), object properties in their declared
// order, optional ones possibly left out and never properties beyond the declared ones
// (valid whatever additionalProperties says), numbers of at most 15 integer and 15
// fraction digits, \u escapes only below U+1000 (no surrogate halves).
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string_view>

#include "lmx/generate/constrained/grammar.h"

namespace lmx::generate::constrained {

// Adds the nodes of `schema` to g and returns its root node. `what` names the schema in
// errors ("response_format.json_schema.schema").
uint32_t add_json_schema(Grammar& g, const nlohmann::ordered_json& schema, std::string_view what);

// A grammar whose root is the schema (checked: it has a finite value).
Grammar compile_json_schema(const nlohmann::ordered_json& schema, std::string_view what);

// Any JSON object (OpenAI's response_format json_object).
Grammar json_object_grammar();

}  // namespace lmx::generate::constrained
