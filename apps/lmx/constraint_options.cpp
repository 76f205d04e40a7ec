#include "constraint_options.h"

#include <CLI/CLI.hpp>
#include <fstream>
#include <sstream>

#include "lmx/base/error.h"
#include "lmx/generate/constrained/constrained_decoding.h"
#include "lmx/generate/model_container.h"

namespace lmx::cli {

void add_constraint_options(CLI::App* cmd, ConstraintArgs& a) {
  auto* schema = cmd->add_option("--json-schema", a.json_schema_file,
                                 "Constrain the output to JSON valid against this JSON schema file");
  auto* object = cmd->add_flag("--json-object", a.json_object, "Constrain the output to one JSON object");
  schema->excludes(object);
}

void add_output_constraint(const ConstraintArgs& a,
                           const generate::ModelContainer& model,
                           generate::GenerateParameters& p) {
  std::shared_ptr<const generate::constrained::Grammar> grammar;
  if (!a.json_schema_file.empty()) {
    std::ifstream in(a.json_schema_file, std::ios::binary);
    if (!in) throw IoError("--json-schema: cannot read " + a.json_schema_file);
    std::stringstream text;
    text << in.rdbuf();
    grammar = generate::json_schema_grammar_from_text(text.str(), "--json-schema " + a.json_schema_file);
  } else if (a.json_object) {
    grammar = generate::json_object_grammar();
  } else {
    return;
  }
  p.logits_processors.push_back(generate::constrained_logits_processor(grammar, model.constraint_vocabulary()));
}

}  // namespace lmx::cli
