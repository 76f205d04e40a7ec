// Wired-memory coordination (mlx-swift's WiredMemoryManager and tickets): work declares
// the memory it wants kept resident with a ticket; one process-wide manager admits
// tickets per policy group, computes the limit (max over groups), applies it through a
// backend while active work runs, and restores the baseline when the last ticket ends.
// What "applying" means is the backend's business: mlock on the CPU (lmx/core/residency.h),
// a reserved memory pool on CUDA. See docs/wired-memory.md.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "lmx/generate/wired_memory_policy.h"

namespace lmx::generate {

// Where the limit goes. Calls come serialized from one manager.
class WiredBackend {
 public:
  virtual ~WiredBackend() = default;
  virtual std::string name() const = 0;
  // The limit in force before the manager changed anything (a baseline source).
  virtual size_t current_limit() = 0;
  // Applies the limit; returns why it (partly) failed, or "" on success.
  virtual std::string apply(size_t limit) = 0;
  virtual std::optional<size_t> recommended_working_set() = 0;
};

enum class TicketKind {
  active,       // running work: keeps the limit raised
  reservation,  // counts toward admission and the limit, but cannot hold it up alone
};

struct WiredManagerConfig {
  // While active work runs, shrink only by at least this fraction of the current limit
  // and at least `shrink_cooldown` after the last change (growth applies at once).
  double shrink_threshold_ratio = 0.25;
  std::chrono::duration<double> shrink_cooldown = std::chrono::seconds(1);
  std::optional<size_t> baseline_override;  // else: last applied limit, else the backend's
  // Where a failed apply is reported besides the event (default: one line on stderr).
  std::function<void(const std::string&)> warn;
};

struct WiredEvent {
  enum class Kind {
    baseline_captured,
    admission_wait,
    admission_granted,
    admission_cancelled,  // stop requested, timed out, or never admissible (see message)
    ticket_started,
    ticket_start_ignored,  // the ticket was already started
    ticket_ended,
    ticket_end_ignored,  // the ticket was not started
    limit_computed,
    limit_applied,
    limit_apply_failed,  // message says why
    baseline_restored,
  };
  uint64_t sequence = 0;
  std::chrono::steady_clock::time_point time;
  Kind kind = Kind::limit_computed;
  uint64_t ticket = 0;  // 0: not about one ticket
  size_t size = 0;
  std::string policy;  // the policy group's id
  std::optional<size_t> baseline, desired, applied;
  size_t active_count = 0;  // tickets registered (active and reservation)
  size_t waiter_count = 0;
  std::string message;
};
const char* wired_event_name(WiredEvent::Kind kind);

class WiredMemoryManager;

namespace detail {
// What an event says beyond its kind (designated initializers at the emit sites).
struct WiredEventFields {
  uint64_t ticket = 0;
  size_t size = 0;
  std::string policy{};
  std::optional<size_t> baseline{}, desired{}, applied{};
  std::string message{};
};
}  // namespace detail

// A unit of memory demand. Copies share the id (they are the same ticket).
class WiredTicket {
 public:
  // manager null: WiredMemoryManager::shared().
  WiredTicket(size_t size,
              std::shared_ptr<const WiredPolicy> policy,
              TicketKind kind = TicketKind::active,
              WiredMemoryManager* manager = nullptr);
  uint64_t id() const { return id_; }
  size_t size() const { return size_; }
  const std::shared_ptr<const WiredPolicy>& policy() const { return policy_; }
  TicketKind kind() const { return kind_; }
  WiredMemoryManager& manager() const { return *manager_; }
  // Waits for admission (stop / timeout: throws lmx::Cancelled), then returns the
  // applied limit. A second start is ignored.
  size_t start(std::stop_token stop = {},
               std::optional<std::chrono::milliseconds> timeout = std::nullopt) const;
  // Releases the ticket and returns the applied limit. A second end is ignored.
  size_t end() const;

 private:
  uint64_t id_;
  size_t size_;
  std::shared_ptr<const WiredPolicy> policy_;
  TicketKind kind_;
  WiredMemoryManager* manager_;
};

// Starts a ticket on construction and ends it exactly once on destruction (normal exit,
// exception or cancellation). If start throws, nothing is ended.
class WiredLimitGuard {
 public:
  explicit WiredLimitGuard(WiredTicket ticket,
                           std::stop_token stop = {},
                           std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  ~WiredLimitGuard() { release(); }
  WiredLimitGuard(const WiredLimitGuard&) = delete;
  WiredLimitGuard& operator=(const WiredLimitGuard&) = delete;
  size_t applied_limit() const { return applied_; }
  const WiredTicket& ticket() const { return ticket_; }
  // Ends the ticket now (idempotent); returns the applied limit after it.
  size_t release();

 private:
  WiredTicket ticket_;
  size_t applied_ = 0;
  bool held_ = true;
};

// Runs fn() while the ticket is held.
template <typename Fn>
auto with_wired_limit(const WiredTicket& ticket, Fn&& fn, std::stop_token stop = {}) {
  WiredLimitGuard guard(ticket, std::move(stop));
  return fn();
}

class WiredMemoryManager {
 public:
  using Clock = std::chrono::steady_clock;
  using ClockFn = std::function<Clock::time_point()>;

  // The process-wide manager: the CPU residency backend (mlock), or the CUDA pool
  // backend when CUDA devices are in use.
  static WiredMemoryManager& shared();

  explicit WiredMemoryManager(std::shared_ptr<WiredBackend> backend,
                              WiredManagerConfig config = {},
                              ClockFn now = {});
  WiredMemoryManager(const WiredMemoryManager&) = delete;
  WiredMemoryManager& operator=(const WiredMemoryManager&) = delete;

  size_t start(const WiredTicket& ticket,
               std::stop_token stop = {},
               std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  size_t end(const WiredTicket& ticket);

  // Replaces the configuration; only while no ticket is registered or waiting
  // (InvalidArgument otherwise).
  void configure(WiredManagerConfig config);

  // Observers get every event in order, called with the manager's lock held: they must
  // not call back into the manager. Dropping the subscription unsubscribes.
  class Subscription {
   public:
    Subscription() = default;
    Subscription(Subscription&& o) noexcept
        : manager_(std::exchange(o.manager_, nullptr)), id_(o.id_) {}
    Subscription& operator=(Subscription&& o) noexcept;
    ~Subscription();

   private:
    friend class WiredMemoryManager;
    Subscription(WiredMemoryManager* m, uint64_t id) : manager_(m), id_(id) {}
    WiredMemoryManager* manager_ = nullptr;
    uint64_t id_ = 0;
  };
  [[nodiscard]] Subscription subscribe(std::function<void(const WiredEvent&)> fn);

  std::optional<size_t> recommended_working_set() const {
    return backend_->recommended_working_set();
  }
  // A source of the recommended working set for policies built for this manager.
  RecommendedWorkingSet recommended_source() const;
  std::optional<size_t> applied_limit() const;  // the last limit applied (none yet: nullopt)
  size_t ticket_count() const;
  size_t waiter_count() const;
  WiredBackend& backend() const { return *backend_; }

 private:
  struct TicketState {
    size_t size;
    std::string group;
    TicketKind kind;
  };
  using EventFields = detail::WiredEventFields;

  void emit(WiredEvent::Kind kind, EventFields fields = {});
  size_t resolve_baseline(bool refresh);
  std::vector<size_t> group_sizes(const std::string& group) const;
  bool has_active_work() const;
  std::optional<size_t> desired_limit() const;
  void apply_current_limit();
  void apply_if_needed(size_t limit);
  void wait_for_admission(const WiredTicket& ticket,
                          size_t& baseline,
                          std::stop_token stop,
                          std::optional<std::chrono::milliseconds> timeout,
                          std::unique_lock<std::mutex>& lock);

  std::shared_ptr<WiredBackend> backend_;
  WiredManagerConfig config_;
  ClockFn now_;

  mutable std::mutex mutex_;
  std::condition_variable_any admitted_;
  std::optional<size_t> baseline_;
  std::optional<size_t> current_limit_;
  bool apply_failed_ = false;  // an apply failed since the last success: restore anyway
  std::optional<Clock::time_point> last_change_;
  std::map<uint64_t, TicketState> tickets_;
  std::map<std::string, std::shared_ptr<const WiredPolicy>> policies_;
  size_t waiters_ = 0;
  uint64_t ends_ = 0;  // tickets ended so far: waiters re-check admission when it moves
  uint64_t sequence_ = 0;
  uint64_t next_subscriber_ = 1;
  std::map<uint64_t, std::function<void(const WiredEvent&)>> subscribers_;
};

}  // namespace lmx::generate
