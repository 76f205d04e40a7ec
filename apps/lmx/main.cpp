// The lmx command line. Every error ends as one line on stderr and a non-zero exit.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <exception>

#include "cli_common.h"
#include "commands.h"
#include "lmx/base/error.h"

int main(int argc, char** argv) {
  CLI::App app{"lmx: run, chat with and serve language models locally (commands: docs/cli.md)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "lmx 0.1.0");
  lmx::cli::add_generate_command(app);
  lmx::cli::add_chat_command(app);
  lmx::cli::add_serve_command(app);
  lmx::cli::add_bench_command(app);
  lmx::cli::add_embed_commands(app);
  lmx::cli::add_logits_command(app);
  lmx::cli::add_preprocess_command(app);
  lmx::cli::add_convert_command(app);
  lmx::cli::add_lora_command(app);
  lmx::cli::add_fuse_command(app);
  lmx::cli::add_tokenize_commands(app);
  lmx::cli::add_template_command(app);
  // Writes to a closed pipe fail with EPIPE (reported below) instead of killing lmx.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    app.parse(argc, argv);
    lmx::cli::check_stdout();
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const lmx::Error& e) {
    std::fprintf(stderr, "lmx: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lmx: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
