// --json-schema FILE and --json-object: constrained decoding for `lmx generate` (the
// output is JSON matching the schema, or any JSON object; see docs/generation.md).
#pragma once

#include <string>

#include "lmx/generate/generate_parameters.h"

namespace CLI {
class App;
}

namespace lmx::generate {
class ModelContainer;
}

namespace lmx::cli {

struct ConstraintArgs {
  std::string json_schema_file;
  bool json_object = false;
};

void add_constraint_options(CLI::App* cmd, ConstraintArgs& a);
// Adds the constraint's logits processor to p (nothing when no option was given). Throws
// IoError / InvalidArgument / Unsupported naming the file for an unreadable or bad schema.
void add_output_constraint(const ConstraintArgs& a,
                           const generate::ModelContainer& model,
                           generate::GenerateParameters& p);

}  // namespace lmx::cli
