// Wired-memory policies (MLXLMCommon's WiredMemoryPolicies): how the tickets of one
// group turn into a limit, and whether one more ticket may join them. Tickets whose
// policies share an id() form one group; the manager takes the maximum over groups.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

namespace lmx::generate {

// The device's recommended working set in bytes (nullopt: unknown, nothing to clamp to).
using RecommendedWorkingSet = std::function<std::optional<size_t>()>;

class WiredPolicy {
 public:
  virtual ~WiredPolicy() = default;
  // The limit this group wants for these active ticket sizes.
  virtual size_t limit(size_t baseline, std::span<const size_t> active_sizes) const = 0;
  // Whether a ticket of new_size may join the group now (else it waits). Default: yes.
  virtual bool can_admit(size_t baseline,
                         std::span<const size_t> active_sizes,
                         size_t new_size) const;
  // Group identity: equal ids share one limit and one admission set.
  virtual std::string id() const = 0;
};

// baseline + sum(sizes), clamped to `cap`, or without a cap to the recommended working
// set; admits a ticket only while the projected sum is not clamped.
class SumPolicy : public WiredPolicy {
 public:
  explicit SumPolicy(std::optional<size_t> cap = std::nullopt,
                     RecommendedWorkingSet recommended = {});
  size_t limit(size_t baseline, std::span<const size_t> active_sizes) const override;
  bool can_admit(size_t baseline,
                 std::span<const size_t> active_sizes,
                 size_t new_size) const override;
  std::string id() const override;

 private:
  std::optional<size_t> cap_;
  RecommendedWorkingSet recommended_;
};

// max(baseline, largest size): the limit follows the largest request in flight.
class MaxPolicy : public WiredPolicy {
 public:
  size_t limit(size_t baseline, std::span<const size_t> active_sizes) const override;
  std::string id() const override { return "max"; }
};

// A constant limit while any ticket of the group is active.
class FixedPolicy : public WiredPolicy {
 public:
  explicit FixedPolicy(size_t bytes) : bytes_(bytes) {}
  size_t limit(size_t, std::span<const size_t>) const override { return bytes_; }
  std::string id() const override { return "fixed(" + std::to_string(bytes_) + ")"; }

 private:
  size_t bytes_;
};

// baseline + base_bytes (e.g. weights + workspace) + sum(sizes), clamped like Sum;
// identity by id (an empty id gets a unique one), so a re-created policy with the same id
// joins the existing group.
class BudgetPolicy : public WiredPolicy {
 public:
  BudgetPolicy(size_t base_bytes,
               std::optional<size_t> cap = std::nullopt,
               std::string id = {},
               RecommendedWorkingSet recommended = {});
  size_t limit(size_t baseline, std::span<const size_t> active_sizes) const override;
  bool can_admit(size_t baseline,
                 std::span<const size_t> active_sizes,
                 size_t new_size) const override;
  std::string id() const override { return "budget#" + id_; }
  size_t base_bytes() const { return base_bytes_; }

 private:
  size_t base_bytes_;
  std::optional<size_t> cap_;
  std::string id_;
  RecommendedWorkingSet recommended_;
};

// The policies by CLI name: "sum" (no cap), "max", "fixed" (`bytes` is the limit, required),
// "budget" (`bytes` is the base). Throws InvalidArgument for other names.
std::shared_ptr<const WiredPolicy> make_wired_policy(const std::string& name,
                                                     std::optional<size_t> bytes,
                                                     RecommendedWorkingSet recommended);

}  // namespace lmx::generate
