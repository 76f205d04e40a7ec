#include "lmx/generate/constrained/constrained_decoding.h"

#include <limits>
#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/generate/constrained/json_schema_compiler.h"
#include "lmx/generate/constrained/token_masker.h"
#include "lmx/tokenizer/tokenizer.h"

namespace lmx::generate {

using namespace constrained;

namespace {

std::shared_ptr<const Grammar> checked(Grammar g, std::string_view what) {
  if (!g.prune_unfinishable())
    throw InvalidArgument(std::string(what) +
                          ": the schema admits no finite JSON value (a recursion with no way out)");
  return std::make_shared<const Grammar>(std::move(g));
}

}  // namespace

std::shared_ptr<const Grammar> json_schema_grammar(const nlohmann::ordered_json& schema,
                                                   std::string_view what) {
  return std::make_shared<const Grammar>(compile_json_schema(schema, what));
}

std::shared_ptr<const Grammar> json_schema_grammar_from_text(std::string_view text,
                                                             std::string_view what) {
  nlohmann::ordered_json schema;
  try {
    schema = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw InvalidArgument(std::string(what) + ": not valid JSON (" + e.what() + ")");
  }
  return json_schema_grammar(schema, what);
}

std::shared_ptr<const Grammar> json_object_grammar() {
  return std::make_shared<const Grammar>(constrained::json_object_grammar());
}

std::shared_ptr<const Grammar> tool_call_grammar(
    const std::vector<std::pair<std::string, nlohmann::ordered_json>>& tools,
    std::string_view prefix,
    std::string_view arguments_key,
    std::string_view suffix,
    std::string_view what) {
  if (tools.empty()) throw InvalidArgument(std::string(what) + ": no tool to call");
  Grammar g;
  const uint32_t call = g.add(Node(NodeKind::kAnyOf));
  std::vector<uint32_t> alternatives;
  for (const auto& [name, parameters] : tools) {
    const std::string where = std::string(what) + " '" + name + "' parameters";
    Node object(NodeKind::kObject);
    object.properties.push_back({g.literal({"\"name\""}), g.literal({nlohmann::json(name).dump()}), true});
    const nlohmann::ordered_json any_object = {{"type", "object"}};
    const uint32_t args = add_json_schema(g, parameters.is_null() ? any_object : parameters, where);
    object.properties.push_back(
        {g.literal({nlohmann::ordered_json(std::string(arguments_key)).dump()}), args, true});
    alternatives.push_back(g.add(std::move(object)));
  }
  g.nodes[call].children = std::move(alternatives);
  Node seq(NodeKind::kSequence);
  if (!prefix.empty()) seq.children.push_back(g.literal({std::string(prefix)}));
  seq.children.push_back(call);
  if (!suffix.empty()) seq.children.push_back(g.literal({std::string(suffix)}));
  g.root = g.add(std::move(seq));
  return checked(std::move(g), what);
}

std::shared_ptr<const TokenVocabulary> constraint_vocabulary(const tokenizer::Tokenizer& tokenizer,
                                                             const std::set<int32_t>& eos_ids) {
  return std::make_shared<const TokenVocabulary>(tokenizer.token_bytes(), eos_ids);
}

namespace {

struct ProcessorState {
  std::shared_ptr<const TokenMasker> masker;
  MatchState state;
  size_t fed = std::numeric_limits<size_t>::max();  // tokens of the history already read
};

}  // namespace

LogitsProcessor constrained_logits_processor(std::shared_ptr<const Grammar> grammar,
                                             std::shared_ptr<const TokenVocabulary> vocabulary) {
  auto matcher = std::make_shared<const GrammarMatcher>(std::move(grammar));
  auto st = std::make_shared<ProcessorState>();
  st->state = matcher->start();
  st->masker = std::make_shared<const TokenMasker>(matcher, std::move(vocabulary));
  return [st](const std::vector<int32_t>& tokens, std::vector<float>& logits) {
    const TokenMasker& masker = *st->masker;
    const TokenVocabulary& v = masker.vocabulary();
    if (st->fed == std::numeric_limits<size_t>::max()) st->fed = tokens.size();  // the prompt
    for (; st->fed < tokens.size(); ++st->fed) {
      const int32_t id = tokens[st->fed];
      const bool known = id >= 0 && static_cast<size_t>(id) < v.size() && !v.bytes(id).empty();
      if (!known || !masker.matcher().advance(st->state, v.bytes(id)))
        throw InvalidArgument("constrained decoding: the generation took token " +
                              std::to_string(id) + ", which the grammar does not allow there");
    }
    const std::shared_ptr<const TokenMask> mask = masker.mask(st->state);
    bool any = false;
    const float off = -std::numeric_limits<float>::infinity();
    for (size_t i = 0; i < logits.size(); ++i) {
      if (i < mask->size() && (*mask)[i]) {
        any = true;
      } else {
        logits[i] = off;
      }
    }
    if (!any)
      throw InvalidArgument(masker.matcher().can_end(st->state)
                                ? "constrained decoding: the output is complete but the model "
                                  "has no EOS token to end it"
                                : "constrained decoding: no token of the vocabulary can continue "
                                  "the output");
  };
}

}  // namespace lmx::generate
