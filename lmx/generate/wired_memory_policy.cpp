#include "lmx/generate/wired_memory_policy.h"

#include <algorithm>
#include <atomic>
#include <limits>

#include "lmx/base/error.h"

namespace lmx::generate {
namespace {

constexpr size_t kMax = std::numeric_limits<size_t>::max();

size_t saturating_add(size_t a, size_t b) { return a > kMax - b ? kMax : a + b; }

size_t saturating_sum(size_t start, std::span<const size_t> sizes) {
  for (size_t s : sizes) start = saturating_add(start, s);
  return start;
}

// min(value, cap), or min(value, recommended working set) without a cap.
size_t clamp(size_t value,
             const std::optional<size_t>& cap,
             const RecommendedWorkingSet& recommended) {
  if (cap) return std::min(value, *cap);
  if (recommended)
    if (auto r = recommended()) return std::min(value, *r);
  return value;
}

// Admission of Sum and Budget: the projected total must not be clamped (an overflowing
// sum never fits).
bool fits(size_t start,
          std::span<const size_t> sizes,
          size_t new_size,
          const std::optional<size_t>& cap,
          const RecommendedWorkingSet& recommended) {
  const size_t projected = saturating_add(saturating_sum(start, sizes), new_size);
  if (projected == kMax) return false;
  return clamp(projected, cap, recommended) == projected;
}

}  // namespace

bool WiredPolicy::can_admit(size_t, std::span<const size_t>, size_t) const { return true; }

SumPolicy::SumPolicy(std::optional<size_t> cap, RecommendedWorkingSet recommended)
    : cap_(cap), recommended_(std::move(recommended)) {}

size_t SumPolicy::limit(size_t baseline, std::span<const size_t> active_sizes) const {
  return clamp(saturating_sum(baseline, active_sizes), cap_, recommended_);
}

bool SumPolicy::can_admit(size_t baseline,
                          std::span<const size_t> active_sizes,
                          size_t new_size) const {
  return fits(baseline, active_sizes, new_size, cap_, recommended_);
}

std::string SumPolicy::id() const {
  return cap_ ? "sum(cap=" + std::to_string(*cap_) + ")" : "sum";
}

size_t MaxPolicy::limit(size_t baseline, std::span<const size_t> active_sizes) const {
  size_t m = baseline;
  for (size_t s : active_sizes) m = std::max(m, s);
  return m;
}

BudgetPolicy::BudgetPolicy(size_t base_bytes,
                           std::optional<size_t> cap,
                           std::string id,
                           RecommendedWorkingSet recommended)
    : base_bytes_(base_bytes), cap_(cap), id_(std::move(id)), recommended_(std::move(recommended)) {
  if (id_.empty()) {
    static std::atomic<uint64_t> next{1};
    id_ = "auto" + std::to_string(next.fetch_add(1));
  }
}

size_t BudgetPolicy::limit(size_t baseline, std::span<const size_t> active_sizes) const {
  return clamp(saturating_sum(saturating_add(baseline, base_bytes_), active_sizes), cap_,
               recommended_);
}

bool BudgetPolicy::can_admit(size_t baseline,
                             std::span<const size_t> active_sizes,
                             size_t new_size) const {
  return fits(saturating_add(baseline, base_bytes_), active_sizes, new_size, cap_, recommended_);
}

std::shared_ptr<const WiredPolicy> make_wired_policy(const std::string& name,
                                                     std::optional<size_t> bytes,
                                                     RecommendedWorkingSet recommended) {
  if (name == "sum") return std::make_shared<SumPolicy>(std::nullopt, std::move(recommended));
  if (name == "max") return std::make_shared<MaxPolicy>();
  if (name == "fixed") {
    if (!bytes) throw InvalidArgument("wire policy 'fixed' needs a limit in bytes (--wired-limit)");
    return std::make_shared<FixedPolicy>(*bytes);
  }
  if (name == "budget")
    return std::make_shared<BudgetPolicy>(bytes.value_or(0), std::nullopt, "cli",
                                          std::move(recommended));
  throw InvalidArgument("unknown wire policy '" + name + "' (expected sum, max, fixed or budget)");
}

}  // namespace lmx::generate
