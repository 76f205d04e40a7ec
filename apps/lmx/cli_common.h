// Helpers shared by the subcommands: model resolution, thread settings, number formats.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "lmx/core/device.h"

namespace lmx::cli {

// A local folder, or a Hugging Face repo id resolved through the hub cache.
std::filesystem::path resolve_model_arg(const std::string& spec);
// --device: "cpu", "cuda" or "cuda:N", checked against this build and machine (one clear
// InvalidArgument otherwise, e.g. a build without CUDA).
Device device_arg(const std::string& text);
// Applies --threads (0 = LMX_NUM_THREADS or the core count).
void apply_threads(int threads);
// "1,2,3" -> ids; throws InvalidArgument naming the bad entry.
std::vector<int32_t> parse_id_list(const std::string& text);
std::string format_bytes(size_t bytes);
// Writes and flushes text to stdout; lmx::IoError ("cannot write to stdout: ...") when
// that fails (a full disk, a closed pipe: main ignores SIGPIPE), so a long generation
// stops at once instead of computing output nobody gets.
void write_stdout(std::string_view text);
// After a command: flushes stdout and throws the same IoError when any write failed.
void check_stdout();

}  // namespace lmx::cli
