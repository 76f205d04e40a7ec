// lmx tokenize / detokenize: text on stdin -> ids (and token strings), ids -> text.
// DIR is a model folder or a folder holding only tokenizer files.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <iterator>

#include "cli_common.h"
#include "commands.h"
#include "lmx/tokenizer/tokenizer.h"

namespace lmx::cli {
namespace {

struct TokenizeArgs {
  std::string model;
  bool no_special = false;
  bool tokens = false;
  bool skip_special = false;
};

std::string read_stdin() {
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

void run_tokenize(const TokenizeArgs& a) {
  auto tok = tokenizer::Tokenizer::from_folder(resolve_model_arg(a.model));
  const std::string text = read_stdin();
  std::vector<int32_t> ids = encode_warning_on_invalid_utf8(tok, text, !a.no_special, "the input");
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
  std::printf("%s\n", line.c_str());
  if (a.tokens) {
    for (int32_t id : ids) {
      auto piece = tok.id_to_token(id);
      std::printf("%d\t%s\n", id, piece ? piece->c_str() : "<unknown>");
    }
  }
}

void run_detokenize(const TokenizeArgs& a) {
  auto tok = tokenizer::Tokenizer::from_folder(resolve_model_arg(a.model));
  std::vector<int32_t> ids = parse_id_list(read_stdin());
  const std::string text = tok.decode(ids, a.skip_special);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
}

}  // namespace

void add_tokenize_commands(CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  auto* enc = app.add_subcommand("tokenize", "Text on stdin -> token ids (space separated)");
  enc->add_option("-m,--model", a->model, "Model folder or tokenizer folder")->required();
  enc->add_flag("--no-special", a->no_special, "Do not add special tokens (BOS/EOS)");
  enc->add_flag("--tokens", a->tokens, "Also print each id with its token string");
  enc->callback([a] { run_tokenize(*a); });
  auto b = std::make_shared<TokenizeArgs>();
  auto* dec = app.add_subcommand("detokenize", "Token ids on stdin -> text");
  dec->add_option("-m,--model", b->model, "Model folder or tokenizer folder")->required();
  dec->add_flag("--skip-special", b->skip_special, "Drop special tokens from the text");
  dec->callback([b] { run_detokenize(*b); });
}

}  // namespace lmx::cli
