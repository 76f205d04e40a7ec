// The lmx subcommands, one file each; main.cpp registers them in this order.
#pragma once

namespace CLI {
class App;
}

namespace lmx::cli {

void add_generate_command(CLI::App& app);
void add_chat_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_logits_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_tokenize_commands(CLI::App& app);
void add_template_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_embed_commands(CLI::App& app);
void add_lora_command(CLI::App& app);
void add_fuse_command(CLI::App& app);
void add_preprocess_command(CLI::App& app);

}  // namespace lmx::cli
