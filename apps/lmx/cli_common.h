// Helpers shared by the subcommands: model resolution, thread settings, number formats.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lmx/core/device.h"

namespace CLI {
class App;
}

namespace lmx::tokenizer {
class Tokenizer;
}
namespace lmx::generate {
class ModelContainer;
}
namespace lmx::models {
struct LoadOptions;
}

namespace lmx::cli {

// A local folder, or a Hugging Face repo id resolved through the hub cache.
std::filesystem::path resolve_model_arg(const std::string& spec);
// --device: "cpu", "cuda" or "cuda:N", checked against this build and machine (one clear
// InvalidArgument otherwise, e.g. a build without CUDA).
Device device_arg(const std::string& text);
// --device on `cmd`, into `device` (checked later by device_arg()).
void add_device_option(CLI::App* cmd, std::string& device);
// --tensor-parallel on `cmd`, into `ranks` (checked when the model loads).
void add_tensor_parallel_option(CLI::App* cmd, int& ranks);
// --adapter-path on `cmd`, into `dir` (generate, chat and serve).
void add_adapter_path_option(CLI::App* cmd, std::string& dir);
// The model of --model loaded with `options`, then, when `adapter_dir` is not empty, its
// adapters attached without fusing (train::attach_adapters; a split model gets each rank's
// share): the one load step of generate, chat and serve. A missing adapter folder fails
// before the model loads, adapters that do not fit it right after (naming file and tensor).
std::shared_ptr<generate::ModelContainer> load_model_with_adapters(const std::string& model,
                                                                   const models::LoadOptions& options,
                                                                   const std::string& adapter_dir);
// Applies --threads (0 = LMX_NUM_THREADS or the core count).
void apply_threads(int threads);
// "1,2,3" -> ids; throws InvalidArgument naming the bad entry.
std::vector<int32_t> parse_id_list(const std::string& text);
std::string format_bytes(size_t bytes);
// Tokenizer::encode, with a warning on stderr naming `what` when `text` is not valid
// UTF-8 (each invalid sequence is then read as U+FFFD, as Python's errors="replace").
std::vector<int32_t> encode_warning_on_invalid_utf8(const tokenizer::Tokenizer& tok,
                                                    std::string_view text,
                                                    bool add_special_tokens,
                                                    const char* what);
// Writes and flushes text to stdout; lmx::IoError ("cannot write to stdout: ...") when
// that fails (a full disk, a closed pipe: main ignores SIGPIPE), so a long generation
// stops at once instead of computing output nobody gets.
void write_stdout(std::string_view text);
// After a command: flushes stdout and throws the same IoError when any write failed.
void check_stdout();

}  // namespace lmx::cli
