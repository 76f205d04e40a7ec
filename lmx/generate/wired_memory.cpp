#include "lmx/generate/wired_memory.h"

#include <algorithm>
#include <atomic>
#include <cstdio>

#include "lmx/base/error.h"
#include "lmx/generate/wired_memory_backend.h"

namespace lmx::generate {
namespace {

std::string describe(const WiredTicket& t) {
  return "ticket " + std::to_string(t.id()) + " (" + std::to_string(t.size()) + " bytes, policy " +
         t.policy()->id() + ")";
}

}  // namespace

const char* wired_event_name(WiredEvent::Kind kind) {
  using K = WiredEvent::Kind;
  switch (kind) {
    case K::baseline_captured:
      return "baseline captured";
    case K::admission_wait:
      return "admission wait";
    case K::admission_granted:
      return "admission granted";
    case K::admission_cancelled:
      return "admission cancelled";
    case K::ticket_started:
      return "ticket started";
    case K::ticket_start_ignored:
      return "ticket start ignored";
    case K::ticket_ended:
      return "ticket ended";
    case K::ticket_end_ignored:
      return "ticket end ignored";
    case K::limit_computed:
      return "limit computed";
    case K::limit_applied:
      return "limit applied";
    case K::limit_apply_failed:
      return "limit apply failed";
    case K::baseline_restored:
      return "baseline restored";
  }
  return "?";
}

WiredTicket::WiredTicket(size_t size,
                         std::shared_ptr<const WiredPolicy> policy,
                         TicketKind kind,
                         WiredMemoryManager* manager)
    : size_(size),
      policy_(std::move(policy)),
      kind_(kind),
      manager_(manager ? manager : &WiredMemoryManager::shared()) {
  static std::atomic<uint64_t> next{1};
  id_ = next.fetch_add(1);
  if (!policy_) throw InvalidArgument("wired memory ticket: no policy");
}

size_t WiredTicket::start(std::stop_token stop,
                          std::optional<std::chrono::milliseconds> timeout) const {
  return manager_->start(*this, std::move(stop), timeout);
}

size_t WiredTicket::end() const { return manager_->end(*this); }

WiredLimitGuard::WiredLimitGuard(WiredTicket ticket,
                                 std::stop_token stop,
                                 std::optional<std::chrono::milliseconds> timeout)
    : ticket_(std::move(ticket)) {
  applied_ = ticket_.start(std::move(stop), timeout);
}

size_t WiredLimitGuard::release() {
  if (std::exchange(held_, false)) applied_ = ticket_.end();
  return applied_;
}

WiredMemoryManager::WiredMemoryManager(std::shared_ptr<WiredBackend> backend,
                                       WiredManagerConfig config,
                                       ClockFn now)
    : backend_(std::move(backend)), now_(now ? std::move(now) : ClockFn(&Clock::now)) {
  if (!backend_) throw InvalidArgument("wired memory manager: no backend");
  configure(std::move(config));
}

void WiredMemoryManager::configure(WiredManagerConfig config) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!tickets_.empty() || waiters_ > 0) {
    throw InvalidArgument(
        "wired memory manager: the configuration can change only while no ticket is running or "
        "waiting");
  }
  config.shrink_threshold_ratio = std::clamp(config.shrink_threshold_ratio, 0.0, 1.0);
  config.shrink_cooldown = std::max(config.shrink_cooldown, std::chrono::duration<double>(0));
  if (!config.warn)
    config.warn = [](const std::string& m) {
      std::fprintf(stderr, "lmx: warning: %s\n", m.c_str());
    };
  config_ = std::move(config);
}

RecommendedWorkingSet WiredMemoryManager::recommended_source() const {
  return [backend = backend_] { return backend->recommended_working_set(); };
}

std::optional<size_t> WiredMemoryManager::applied_limit() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return current_limit_;
}

size_t WiredMemoryManager::ticket_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return tickets_.size();
}

size_t WiredMemoryManager::waiter_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return waiters_;
}

WiredMemoryManager::Subscription& WiredMemoryManager::Subscription::operator=(
    Subscription&& o) noexcept {
  if (this != &o) {
    this->~Subscription();
    manager_ = std::exchange(o.manager_, nullptr);
    id_ = o.id_;
  }
  return *this;
}

WiredMemoryManager::Subscription::~Subscription() {
  if (auto* m = std::exchange(manager_, nullptr)) {
    std::lock_guard<std::mutex> lock(m->mutex_);
    m->subscribers_.erase(id_);
  }
}

WiredMemoryManager::Subscription WiredMemoryManager::subscribe(
    std::function<void(const WiredEvent&)> fn) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t id = next_subscriber_++;
  subscribers_[id] = std::move(fn);
  return Subscription(this, id);
}

void WiredMemoryManager::emit(WiredEvent::Kind kind, EventFields f) {
  ++sequence_;
  if (subscribers_.empty()) return;
  WiredEvent e;
  e.sequence = sequence_;
  e.time = now_();
  e.kind = kind;
  e.ticket = f.ticket;
  e.size = f.size;
  e.policy = std::move(f.policy);
  e.baseline = f.baseline;
  e.desired = f.desired;
  e.applied = f.applied;
  e.active_count = tickets_.size();
  e.waiter_count = waiters_;
  e.message = std::move(f.message);
  for (const auto& [id, fn] : subscribers_) fn(e);
}

size_t WiredMemoryManager::resolve_baseline(bool refresh) {
  if (baseline_ && !refresh) return *baseline_;
  const size_t value = config_.baseline_override ? *config_.baseline_override
                       : current_limit_          ? *current_limit_
                                                 : backend_->current_limit();
  const auto previous = std::exchange(baseline_, value);
  if (previous != value)
    emit(WiredEvent::Kind::baseline_captured, {.baseline = value, .applied = value});
  return value;
}

std::vector<size_t> WiredMemoryManager::group_sizes(const std::string& group) const {
  std::vector<size_t> sizes;
  for (const auto& [id, t] : tickets_)
    if (t.group == group) sizes.push_back(t.size);
  return sizes;
}

bool WiredMemoryManager::has_active_work() const {
  return std::any_of(tickets_.begin(), tickets_.end(),
                     [](const auto& t) { return t.second.kind == TicketKind::active; });
}

std::optional<size_t> WiredMemoryManager::desired_limit() const {
  if (!baseline_) return std::nullopt;
  if (tickets_.empty()) return baseline_;
  std::optional<size_t> desired;
  for (const auto& [group, policy] : policies_) {
    const size_t limit = policy->limit(*baseline_, group_sizes(group));
    desired = std::max(desired.value_or(limit), limit);
  }
  return desired.value_or(*baseline_);
}

void WiredMemoryManager::apply_if_needed(size_t limit) {
  if (current_limit_ == limit && !apply_failed_) return;
  if (current_limit_ && limit < *current_limit_ && has_active_work()) {
    const double drop =
        static_cast<double>(*current_limit_ - limit) / static_cast<double>(*current_limit_);
    if (drop < config_.shrink_threshold_ratio) return;
    if (last_change_ && now_() - *last_change_ < config_.shrink_cooldown) return;
  }
  std::string error = backend_->apply(limit);
  if (error.empty()) {
    current_limit_ = limit;
    apply_failed_ = false;
    last_change_ = now_();
    emit(WiredEvent::Kind::limit_applied,
         {.baseline = baseline_, .desired = limit, .applied = limit});
    return;
  }
  apply_failed_ = true;
  emit(WiredEvent::Kind::limit_apply_failed,
       {.baseline = baseline_, .desired = limit, .applied = current_limit_, .message = error});
  config_.warn("wired memory: applying a limit of " + std::to_string(limit) + " bytes through " +
               backend_->name() + " failed: " + error);
}

void WiredMemoryManager::apply_current_limit() {
  const auto desired = desired_limit();
  if (!desired) return;
  if (!has_active_work()) {
    // Reservations alone never hold the limit up.
    if (current_limit_.value_or(*baseline_) != *baseline_ || apply_failed_) {
      apply_if_needed(*baseline_);
      emit(WiredEvent::Kind::baseline_restored, {.baseline = baseline_, .applied = current_limit_});
    }
    return;
  }
  emit(WiredEvent::Kind::limit_computed, {.baseline = baseline_, .desired = desired});
  apply_if_needed(*desired);
}

void WiredMemoryManager::wait_for_admission(const WiredTicket& t,
                                            size_t& baseline,
                                            std::stop_token stop,
                                            std::optional<std::chrono::milliseconds> timeout,
                                            std::unique_lock<std::mutex>& lock) {
  const std::string group = t.policy()->id();
  const auto admits = [&] {
    baseline = resolve_baseline(!baseline_ || !has_active_work());
    return t.policy()->can_admit(baseline, group_sizes(group), t.size());
  };
  const auto give_up = [&](const std::string& why) {
    emit(WiredEvent::Kind::admission_cancelled, {.ticket = t.id(),
                                                 .size = t.size(),
                                                 .policy = group,
                                                 .baseline = baseline,
                                                 .message = why});
  };
  const auto deadline = Clock::now() + timeout.value_or(std::chrono::milliseconds(0));
  ++waiters_;
  struct Leave {
    size_t& n;
    ~Leave() { --n; }
  } leave{waiters_};
  emit(WiredEvent::Kind::admission_wait,
       {.ticket = t.id(), .size = t.size(), .policy = group, .baseline = baseline});
  while (!admits()) {
    if (tickets_.empty()) {
      // Nothing running could ever end and make room: waiting would never return.
      const std::string why =
          describe(t) + " can never be admitted (baseline " + std::to_string(baseline) + ")";
      give_up(why);
      throw OutOfMemory("wired memory: " + why);
    }
    const uint64_t seen = ends_;
    const auto changed = [&] { return ends_ != seen; };
    const bool woke = timeout ? admitted_.wait_until(lock, stop, deadline, changed)
                              : admitted_.wait(lock, stop, changed);
    if (stop.stop_requested()) {
      give_up("stop requested");
      throw Cancelled("wired memory: admission of " + describe(t) + " cancelled");
    }
    if (!woke) {
      give_up("timed out");
      throw Cancelled("wired memory: admission of " + describe(t) + " timed out after " +
                      std::to_string(timeout->count()) + " ms");
    }
  }
}

size_t WiredMemoryManager::start(const WiredTicket& t,
                                 std::stop_token stop,
                                 std::optional<std::chrono::milliseconds> timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  size_t baseline = resolve_baseline(!baseline_ || !has_active_work());
  const std::string group = t.policy()->id();
  if (tickets_.count(t.id())) {
    emit(WiredEvent::Kind::ticket_start_ignored,
         {.ticket = t.id(), .size = t.size(), .policy = group, .baseline = baseline});
    return current_limit_.value_or(baseline);
  }
  if (!t.policy()->can_admit(baseline, group_sizes(group), t.size())) {
    wait_for_admission(t, baseline, std::move(stop), timeout, lock);
  }
  emit(WiredEvent::Kind::admission_granted,
       {.ticket = t.id(), .size = t.size(), .policy = group, .baseline = baseline});
  tickets_[t.id()] = TicketState{t.size(), group, t.kind()};
  policies_[group] = t.policy();
  emit(WiredEvent::Kind::ticket_started,
       {.ticket = t.id(), .size = t.size(), .policy = group, .baseline = baseline});
  apply_current_limit();
  return current_limit_.value_or(baseline);
}

size_t WiredMemoryManager::end(const WiredTicket& t) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto it = tickets_.find(t.id());
  if (it == tickets_.end()) {
    emit(WiredEvent::Kind::ticket_end_ignored,
         {.ticket = t.id(), .size = t.size(), .policy = t.policy()->id()});
    return current_limit_.value_or(baseline_.value_or(0));
  }
  const TicketState state = it->second;
  tickets_.erase(it);
  emit(WiredEvent::Kind::ticket_ended,
       {.ticket = t.id(), .size = state.size, .policy = state.group, .baseline = baseline_});
  if (group_sizes(state.group).empty()) policies_.erase(state.group);
  ++ends_;
  if (tickets_.empty()) {
    const size_t baseline = baseline_.value_or(0);
    if (current_limit_ != baseline || apply_failed_) apply_if_needed(baseline);
    emit(WiredEvent::Kind::baseline_restored, {.baseline = baseline, .applied = current_limit_});
    baseline_.reset();
    admitted_.notify_all();
    return baseline;
  }
  apply_current_limit();
  admitted_.notify_all();
  return current_limit_.value_or(baseline_.value_or(0));
}

WiredMemoryManager& WiredMemoryManager::shared() {
  // Never destroyed: guards held by other statics may end after main returns.
  static WiredMemoryManager* manager = new WiredMemoryManager(make_default_wired_backend());
  return *manager;
}

}  // namespace lmx::generate
