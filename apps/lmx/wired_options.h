// --wired-limit and --wire-policy for `lmx generate` and `lmx chat`: how much memory a
// run keeps wired (pinned in RAM on the CPU) and by which policy the process-wide
// wired-memory manager combines it with other work. See docs/wired-memory.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

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

// With `verbose`, prints each limit the shared manager applies (or fails to) on stderr
// while the returned subscription lives.
generate::WiredMemoryManager::Subscription report_wired_limits(bool verbose);

// For callers that run generation through an API without a ticket option (ChatSession):
// holds the ticket and pins the model's weights until destroyed.
struct WiredHold {
  WiredHold(const generate::WiredTicket& ticket, models::LanguageModel& model);
  residency::RegionRegistry::Handle weights;
  generate::WiredLimitGuard guard;
};

}  // namespace lmx::cli
