// Constrained decoding: generation whose output always parses as JSON matching a
// schema (or is any JSON object), by a logits processor that lets through only the
// tokens that keep the text a prefix of a valid value, and EOS only once it is complete.
//
//   auto grammar = generate::json_schema_grammar(schema);  // throws on a bad schema
//   params.logits_processors.push_back(
//       generate::constrained_logits_processor(grammar, container->constraint_vocabulary()));
//
// The schema subset and what the output looks like: constrained/json_schema_compiler.h
// and docs/generation.md. The vocabulary index is built once per tokenizer; the grammar
// once per schema; the processor once per generation (it follows that generation's tokens).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace lmx::tokenizer {
class Tokenizer;
}

namespace lmx::generate {

namespace constrained {
struct Grammar;
class TokenVocabulary;
}  // namespace constrained

using LogitsProcessor = std::function<void(const std::vector<int32_t>&, std::vector<float>&)>;

// Throws lmx::InvalidArgument / lmx::Unsupported naming `what` and the place in the
// schema (malformed, unsupported keyword, too deep, > 1024 enum values, no finite value).
std::shared_ptr<const constrained::Grammar> json_schema_grammar(const nlohmann::ordered_json& schema,
                                                                std::string_view what = "json schema");
// The same from JSON text (a parse error is an InvalidArgument naming `what`).
std::shared_ptr<const constrained::Grammar> json_schema_grammar_from_text(std::string_view text,
                                                                          std::string_view what);
// Any JSON object.
std::shared_ptr<const constrained::Grammar> json_object_grammar();
// A tool call: `prefix`, then {"name": <one of the tools>, "<arguments_key>": <its
// parameters>}, then `suffix`. tools: (name, parameters schema) pairs; `what` names them
// in errors.
std::shared_ptr<const constrained::Grammar> tool_call_grammar(
    const std::vector<std::pair<std::string, nlohmann::ordered_json>>& tools,
    std::string_view prefix,
    std::string_view arguments_key,
    std::string_view suffix,
    std::string_view what);

// The tokenizer's vocabulary indexed for the processor; eos_ids: the tokens that end a
// generation (allowed only once the value is complete).
std::shared_ptr<const constrained::TokenVocabulary> constraint_vocabulary(
    const tokenizer::Tokenizer& tokenizer, const std::set<int32_t>& eos_ids);

// A processor for one generation (GenerateParameters::logits_processors): sets the
// logits of disallowed tokens to -inf. Throws lmx::InvalidArgument if the generation
// takes a token the grammar does not allow (another processor overrode the mask) or no
// token can continue (the model's EOS is needed and it has none).
LogitsProcessor constrained_logits_processor(std::shared_ptr<const constrained::Grammar> grammar,
                                             std::shared_ptr<const constrained::TokenVocabulary> vocabulary);

}  // namespace lmx::generate
