#include "cli_common.h"

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "lmx/base/error.h"
#include "lmx/base/thread_pool.h"
#include "lmx/core/backend.h"
#include "lmx/generate/model_container.h"
#include "lmx/io/hub.h"
#include "lmx/tokenizer/tokenizer.h"
#include "lmx/train/adapter_file.h"

namespace lmx::cli {

std::filesystem::path resolve_model_arg(const std::string& spec) {
  if (spec.empty()) throw InvalidArgument("--model is required (a model folder or a Hugging Face repo id)");
  return io::resolve_model(spec);
}

Device device_arg(const std::string& text) {
  try {
    const Device device = Device::parse(text);
    backend_for(device);  // this build and machine have it
    return device;
  } catch (const Error& e) {
    throw InvalidArgument("--device " + text + ": " + e.what());
  }
}

void add_device_option(CLI::App* cmd, std::string& device) {
  cmd->add_option("--device", device,
                  "cpu (default); cuda or cuda:N in a -DLMX_CUDA=ON build (docs/cli.md)");
}

void add_tensor_parallel_option(CLI::App* cmd, int& ranks) {
  cmd->add_option("--tensor-parallel", ranks,
                  "Split the model's heads, MLP or experts and vocabulary over N ranks (threads of this process on "
                  "the CPU; with --device cuda[:K], GPUs K..K+N-1 with NCCL, run on one GPU only so far; decoder "
                  "transformers; docs/tensor_parallel.md; default 1)");
}

void add_adapter_path_option(CLI::App* cmd, std::string& dir) {
  cmd->add_option("--adapter-path", dir,
                  "LoRA / DoRA adapters (mlx-lm or PEFT folder; also with --tensor-parallel) or full fine-tuning "
                  "weights, applied without fusing");
}

std::shared_ptr<generate::ModelContainer> load_model_with_adapters(const std::string& model,
                                                                   const models::LoadOptions& options,
                                                                   const std::string& adapter_dir) {
  if (!adapter_dir.empty()) train::check_adapter_folder(adapter_dir);
  auto container = generate::ModelContainer::load(resolve_model_arg(model).string(), options);
  if (!adapter_dir.empty()) train::attach_adapters(container->model(), adapter_dir);
  return container;
}

void apply_threads(int threads) {
  if (threads < 0) throw InvalidArgument("--threads must be >= 0");
  if (threads > 0) ThreadPool::set_global_threads(threads);
}

std::vector<int32_t> parse_id_list(const std::string& text) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find_first_of(", \n\t", pos);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(pos, end - pos);
    if (!item.empty()) {
      char* stop = nullptr;
      long long v = std::strtoll(item.c_str(), &stop, 10);
      if (*stop != '\0' || v < INT32_MIN || v > INT32_MAX) {
        throw InvalidArgument("'" + item + "' is not a token id");
      }
      ids.push_back(static_cast<int32_t>(v));
    }
    pos = end + 1;
  }
  return ids;
}

void write_stdout(std::string_view text) {
  if (!text.empty()) std::fwrite(text.data(), 1, text.size(), stdout);
  check_stdout();
}

void check_stdout() {
  errno = 0;
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    const int err = errno;
    std::clearerr(stdout);
    throw IoError(std::string("cannot write to stdout: ") +
                  (err ? std::strerror(err) : "write error"));
  }
}

std::vector<int32_t> encode_warning_on_invalid_utf8(const tokenizer::Tokenizer& tok,
                                                    std::string_view text,
                                                    bool add_special_tokens,
                                                    const char* what) {
  try {
    return tok.encode_strict(text, add_special_tokens);
  } catch (const InvalidArgument& e) {
    std::fprintf(stderr, "lmx: warning: %s: %s; each invalid sequence is read as U+FFFD\n", what, e.what());
    return tok.encode(text, add_special_tokens);
  }
}

std::string format_bytes(size_t bytes) {
  char buf[64];
  if (bytes >= (size_t{1} << 30)) {
    std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1 << 30));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  }
  return buf;
}

}  // namespace lmx::cli
