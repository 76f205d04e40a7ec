// --wired-limit and --wire-policy for `lmx generate` and `lmx chat`: how much memory a
// run keeps wired (pinned in RAM on the CPU) and by which policy the process-wide
// wired-memory manager combines it with other work. See docs/wired-memory.md.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "lmx/core/residency.h"
#include "lmx/generate/generate_parameters.h"
#include "lmx/generate/wired_memory.h"
#include "lmx/models/language_model.h"

namespace CLI {
class App;
}

namespace lmx::cli {

struct WiredArgs {
  std::string limit = "none";  // BYTES (2G, 512M, 1.5GiB), auto, none
  std::string policy = "sum";  // sum, max, fixed, budget
};

void add_wired_options(CLI::App* cmd, WiredArgs& a);

// "4096", "512K", "2G", "1.5GiB" (binary multiples); InvalidArgument naming `option`
// (when not empty) and the text.
size_t parse_byte_size(const std::string& text, const std::string& option);

// The ticket a run holds (nullopt with --wired-limit none). auto sizes it from
// estimate_memory (weights + KV for prompt_tokens + max_tokens + workspace); the budget
// policy takes weights + workspace (or BYTES) as its base and the KV cache as the size.
std::optional<generate::WiredTicket> make_wired_ticket(const WiredArgs& a,
                                                       models::LanguageModel& model,
                                                       int64_t prompt_tokens,
                                                       const generate::GenerateParameters& p);

// With `verbose`, collects each limit the shared manager applies (or fails to) while it
// lives; flush() prints what was collected on stderr (after the generated text, so the
// lines never land inside it).
class WiredLog {
 public:
  explicit WiredLog(bool verbose);
  void flush();

 private:
  std::mutex mutex_;
  std::vector<std::string> lines_;
  generate::WiredMemoryManager::Subscription subscription_;
};

}  // namespace lmx::cli
