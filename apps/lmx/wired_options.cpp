#include "wired_options.h"

#include <CLI/CLI.hpp>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "cli_common.h"
#include "lmx/base/error.h"
#include "lmx/generate/wired_memory_backend.h"
#include "lmx/generate/wired_memory_estimate.h"

namespace lmx::cli {

void add_wired_options(CLI::App* cmd, WiredArgs& a) {
  cmd->add_option(
         "--wired-limit", a.limit,
         "Memory to keep wired (pinned in RAM) while generating: BYTES (e.g. 2G, 512M), auto (the "
         "estimate of weights + KV cache + workspace) or none")
      ->check([](const std::string& v) -> std::string {
        if (v == "auto" || v == "none") return "";
        try {
          parse_byte_size(v, "");
          return "";
        } catch (const InvalidArgument& e) {
          return e.what();
        }
      })
      ->capture_default_str();
  cmd->add_option("--wire-policy", a.policy,
                  "How the wired limit combines with other work: sum, max, fixed (the limit as "
                  "given) or budget "
                  "(the limit as base, plus the KV cache)")
      ->check(CLI::IsMember({"sum", "max", "fixed", "budget"}))
      ->capture_default_str();
}

size_t parse_byte_size(const std::string& text, const std::string& option) {
  const InvalidArgument bad((option.empty() ? "" : option + ": ") + "'" + text +
                            "' is not a size (bytes, or a number with K, M, G or T)");
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    throw bad;
  }
  std::string unit = text.substr(used);  // "", "B", "G", "GB" or "GiB"
  if (unit == "B") unit.clear();
  if (unit.size() > 1 && (unit.substr(1) == "B" || unit.substr(1) == "iB")) unit.resize(1);
  static const std::string kUnits = "KMGT";
  int power = 0;
  if (!unit.empty()) {
    const size_t at = unit.size() == 1 ? kUnits.find(static_cast<char>(std::toupper(unit[0])))
                                       : std::string::npos;
    if (at == std::string::npos) throw bad;
    power = static_cast<int>(at) + 1;
  }
  if (!std::isfinite(value) || value < 0) throw bad;
  return static_cast<size_t>(std::llround(std::ldexp(value, 10 * power)));
}

std::optional<generate::WiredTicket> make_wired_ticket(const WiredArgs& a,
                                                       models::LanguageModel& model,
                                                       int64_t prompt_tokens,
                                                       const generate::GenerateParameters& p) {
  if (a.limit == "none") return std::nullopt;
  auto& manager = generate::WiredMemoryManager::shared();
  const auto e = generate::estimate_memory(model, prompt_tokens, p);
  const std::optional<size_t> bytes =
      a.limit == "auto" ? std::nullopt
                        : std::optional<size_t>(parse_byte_size(a.limit, "--wired-limit"));
  if (a.policy == "budget") {
    auto policy = generate::make_wired_policy(
        "budget", bytes.value_or(e.weight_bytes + e.workspace_bytes), manager.recommended_source());
    return generate::WiredTicket(e.kv_bytes, policy);
  }
  const size_t size = bytes.value_or(e.total_bytes);
  return generate::WiredTicket(
      size, generate::make_wired_policy(a.policy, size, manager.recommended_source()));
}

WiredLog::WiredLog(bool verbose) {
  if (!verbose) return;
  subscription_ = generate::WiredMemoryManager::shared().subscribe([this](const generate::WiredEvent& e) {
    using K = generate::WiredEvent::Kind;
    if (e.kind != K::limit_applied && e.kind != K::limit_apply_failed && e.kind != K::baseline_restored) return;
    const size_t bytes = e.kind == K::limit_apply_failed ? e.desired.value_or(0) : e.applied.value_or(0);
    std::string line = std::string("wired memory: ") + generate::wired_event_name(e.kind) + ": " + format_bytes(bytes);
    if (!e.message.empty()) line += " - " + e.message;
    std::lock_guard<std::mutex> lock(mutex_);
    lines_.push_back(std::move(line));
  });
}

void WiredLog::flush() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& l : lines_) std::fprintf(stderr, "%s\n", l.c_str());
  lines_.clear();
}

}  // namespace lmx::cli
