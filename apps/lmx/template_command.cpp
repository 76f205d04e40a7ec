// lmx template: renders a chat template exactly (no trailing newline added), for
// debugging templates: --model DIR (its template and special tokens) or --template FILE.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_common.h"
#include "commands.h"
#include "lmx/chat/chat_template.h"
#include "lmx/base/error.h"

namespace lmx::cli {
namespace {

struct TemplateArgs {
  std::string model;
  std::string template_file;
  std::string messages;
  std::string tools;
  bool no_generation_prompt = false;
  std::vector<std::string> vars;
  std::string bos_token;
  std::string eos_token;
};

nlohmann::ordered_json read_json_file(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) throw IoError(std::string(what) + ": cannot read " + path);
  try {
    return nlohmann::ordered_json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path + ": " + e.what());
  }
}

void run_template(const TemplateArgs& a) {
  if (a.model.empty() == a.template_file.empty()) throw InvalidArgument("give --model DIR or --template FILE.jinja");
  nlohmann::ordered_json messages = read_json_file(a.messages, "--messages");
  if (!messages.is_array()) throw FormatError(a.messages + ": expected a JSON list of messages");
  nlohmann::ordered_json tools;
  if (!a.tools.empty()) tools = read_json_file(a.tools, "--tools");
  const bool has_tools = tools.is_array() && !tools.empty();
  std::string source;
  chat::SpecialTokens specials;
  if (!a.model.empty()) {
    auto dir = resolve_model_arg(a.model);
    source = chat::select_chat_template(dir, has_tools).text;
    std::ifstream cfg(dir / "tokenizer_config.json");
    if (cfg) specials = chat::special_tokens_from_config(read_json_file((dir / "tokenizer_config.json").string(), "config"));
  } else {
    std::ifstream in(a.template_file);
    if (!in) throw IoError("--template: cannot read " + a.template_file);
    std::stringstream ss;
    ss << in.rdbuf();
    source = ss.str();
  }
  auto set_special = [&](const std::string& name, const std::string& value) {
    if (value.empty()) return;
    for (auto& [k, v] : specials)
      if (k == name) {
        v = value;
        return;
      }
    specials.emplace_back(name, value);
  };
  set_special("bos_token", a.bos_token);
  set_special("eos_token", a.eos_token);
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  for (const auto& v : a.vars) {
    auto [key, value] = chat::parse_template_variable(v);
    extra[key] = value;
  }
  chat::ChatTemplate tmpl(source);
  chat::ChatRenderOptions opts;
  opts.add_generation_prompt = !a.no_generation_prompt;
  const std::string out = tmpl.render(messages, tools, extra, specials, opts);
  std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

void add_template_command(CLI::App& app) {
  auto a = std::make_shared<TemplateArgs>();
  auto* cmd = app.add_subcommand("template", "Render a chat template (exactly as transformers would)");
  cmd->add_option("-m,--model", a->model, "Model folder (its chat template and special tokens)");
  cmd->add_option("--template", a->template_file, "A .jinja template file");
  cmd->add_option("--messages", a->messages, "JSON file: OpenAI-style message list")->required();
  cmd->add_option("--tools", a->tools, "JSON file: list of tool schemas");
  cmd->add_flag("--no-generation-prompt", a->no_generation_prompt, "add_generation_prompt = false");
  cmd->add_option("--var", a->vars, "Template variable key=value (JSON value or string); repeatable");
  cmd->add_option("--bos-token", a->bos_token, "bos_token (overrides the model's)");
  cmd->add_option("--eos-token", a->eos_token, "eos_token (overrides the model's)");
  cmd->callback([a] { run_template(*a); });
}

}  // namespace lmx::cli
