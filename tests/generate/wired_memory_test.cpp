// Wired-memory policies and manager against their definitions: each policy's limit and
// admission math, the manager's baseline / max-over-groups / reservation / hysteresis
// rules (with an injected clock), admission waits that end, cancel or time out, the RAII
// guard, apply failures, and many threads whose every applied limit equals the formula
// over the tickets live at that moment.
#include "lmx/generate/wired_memory.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <random>
#include <thread>

#include "lmx/base/error.h"

namespace lmx::generate {
namespace {

using namespace std::chrono_literals;
using Kind = WiredEvent::Kind;

std::vector<size_t> sizes(std::initializer_list<size_t> s) { return s; }
RecommendedWorkingSet fixed_recommended(size_t bytes) {
  return [bytes] { return std::optional<size_t>(bytes); };
}

// Records every limit it is asked to apply; fails above `fail_above`.
class FakeBackend : public WiredBackend {
 public:
  std::string name() const override { return "fake"; }
  size_t current_limit() override { return initial; }
  std::string apply(size_t limit) override {
    applied.push_back(limit);
    return limit > fail_above ? "too much" : "";
  }
  std::optional<size_t> recommended_working_set() override { return recommended; }
  size_t initial = 0;
  size_t fail_above = SIZE_MAX;
  std::optional<size_t> recommended = 1000;
  std::vector<size_t> applied;
};

struct Harness {
  explicit Harness(WiredManagerConfig config = {}) {
    config.warn = [this](const std::string& m) { warnings.push_back(m); };
    manager = std::make_unique<WiredMemoryManager>(backend, config, [this] { return now; });
    sub = manager->subscribe([this](const WiredEvent& e) { events.push_back(e); });
  }
  WiredTicket ticket(size_t size,
                     std::shared_ptr<const WiredPolicy> p,
                     TicketKind kind = TicketKind::active) {
    return WiredTicket(size, std::move(p), kind, manager.get());
  }
  std::vector<Kind> kinds() const {
    std::vector<Kind> k;
    for (const auto& e : events) k.push_back(e.kind);
    return k;
  }
  std::shared_ptr<FakeBackend> backend = std::make_shared<FakeBackend>();
  WiredMemoryManager::Clock::time_point now{};
  std::vector<std::string> warnings;
  std::vector<WiredEvent> events;
  std::unique_ptr<WiredMemoryManager> manager;
  WiredMemoryManager::Subscription sub;
};

TEST(WiredPolicy, SumAddsSizesToTheBaselineAndClampsToTheCap) {
  SumPolicy capped(100);
  EXPECT_EQ(capped.limit(10, sizes({20, 30})), 60u);
  EXPECT_EQ(capped.limit(10, sizes({50, 60})), 100u);
  EXPECT_TRUE(capped.can_admit(10, sizes({20, 30}), 40));   // 100: not clamped
  EXPECT_FALSE(capped.can_admit(10, sizes({20, 30}), 41));  // 101 would be clamped
  EXPECT_EQ(capped.id(), "sum(cap=100)");
}

TEST(WiredPolicy, SumWithoutCapClampsToTheRecommendedWorkingSet) {
  SumPolicy p(std::nullopt, fixed_recommended(500));
  EXPECT_EQ(p.limit(100, sizes({300, 300})), 500u);
  EXPECT_TRUE(p.can_admit(100, sizes({300}), 100));
  EXPECT_FALSE(p.can_admit(100, sizes({300}), 101));
  SumPolicy unbounded(std::nullopt, [] { return std::optional<size_t>(); });
  EXPECT_EQ(unbounded.limit(1, sizes({1000000})), 1000001u);
  EXPECT_TRUE(unbounded.can_admit(1, sizes({}), 1u << 30));
  EXPECT_FALSE(unbounded.can_admit(1, sizes({SIZE_MAX - 1}), 5));  // overflow never fits
}

TEST(WiredPolicy, MaxFixedAndDefaultAdmission) {
  MaxPolicy m;
  EXPECT_EQ(m.limit(100, sizes({20, 300, 50})), 300u);
  EXPECT_EQ(m.limit(100, sizes({20, 50})), 100u);
  EXPECT_EQ(m.limit(7, sizes({})), 7u);
  EXPECT_TRUE(m.can_admit(0, sizes({SIZE_MAX}), SIZE_MAX));
  FixedPolicy f(4096);
  EXPECT_EQ(f.limit(100, sizes({1, 2, 3})), 4096u);
  EXPECT_EQ(f.limit(100000, sizes({})), 4096u);
  EXPECT_EQ(f.id(), FixedPolicy(4096).id());
  EXPECT_NE(f.id(), FixedPolicy(4097).id());
}

TEST(WiredPolicy, BudgetAddsBaseBytesClampsAndGroupsById) {
  BudgetPolicy b(1000, 2000, "model-a");
  EXPECT_EQ(b.limit(100, sizes({200, 300})), 1600u);
  EXPECT_EQ(b.limit(100, sizes({900, 300})), 2000u);
  EXPECT_TRUE(b.can_admit(100, sizes({200}), 700));
  EXPECT_FALSE(b.can_admit(100, sizes({200}), 701));
  BudgetPolicy uncapped(1000, std::nullopt, "model-a", fixed_recommended(1500));
  EXPECT_EQ(uncapped.limit(0, sizes({800})), 1500u);
  EXPECT_EQ(b.id(), uncapped.id());  // same id, same group, whatever the numbers
  EXPECT_NE(BudgetPolicy(10).id(), BudgetPolicy(10).id());  // no id: each is its own group
}

TEST(WiredPolicy, MakeByName) {
  EXPECT_EQ(make_wired_policy("fixed", 77, {})->limit(0, sizes({})), 77u);
  EXPECT_EQ(make_wired_policy("budget", 10, fixed_recommended(100))->limit(5, sizes({20})), 35u);
  EXPECT_EQ(make_wired_policy("max", std::nullopt, {})->limit(5, sizes({20})), 20u);
  EXPECT_EQ(
      make_wired_policy("sum", std::nullopt, fixed_recommended(30))->limit(5, sizes({20, 20})),
      30u);
  EXPECT_THROW(make_wired_policy("fixed", std::nullopt, {}), InvalidArgument);
  EXPECT_THROW(make_wired_policy("most", std::nullopt, {}), InvalidArgument);
}

TEST(WiredManager, OneTicketRaisesTheLimitAndRestoresTheBaseline) {
  Harness h;
  h.backend->initial = 50;
  auto t = h.ticket(200, std::make_shared<SumPolicy>(1000));
  EXPECT_EQ(t.start(), 250u);
  EXPECT_EQ(h.manager->applied_limit(), 250u);
  EXPECT_EQ(t.end(), 50u);
  EXPECT_EQ(h.backend->applied, (std::vector<size_t>{250, 50}));
  EXPECT_EQ(h.kinds(),
            (std::vector<Kind>{Kind::baseline_captured, Kind::admission_granted,
                               Kind::ticket_started, Kind::limit_computed, Kind::limit_applied,
                               Kind::ticket_ended, Kind::limit_applied, Kind::baseline_restored}));
  EXPECT_EQ(h.events[0].baseline, 50u);
  for (size_t i = 1; i < h.events.size(); ++i)
    EXPECT_EQ(h.events[i].sequence, h.events[i - 1].sequence + 1);
  // Duplicates are ignored, not double counted.
  t.start();
  t.start();
  EXPECT_EQ(h.manager->ticket_count(), 1u);
  t.end();
  t.end();
  EXPECT_EQ(h.events.back().kind, Kind::ticket_end_ignored);
  EXPECT_EQ(h.manager->ticket_count(), 0u);
}

TEST(WiredManager, LimitIsTheMaximumOverPolicyGroups) {
  Harness h;
  auto sum = std::make_shared<SumPolicy>(10000);
  auto a = h.ticket(100, sum), b = h.ticket(150, sum);
  auto c = h.ticket(400, std::make_shared<MaxPolicy>());
  a.start();
  b.start();
  EXPECT_EQ(h.manager->applied_limit(), 250u);
  EXPECT_EQ(c.start(), 400u);
  c.end();
  EXPECT_EQ(h.manager->applied_limit(), 400u);  // a 37% drop, but inside the 1 s cooldown
  h.now += 2s;
  b.end();
  EXPECT_EQ(h.manager->applied_limit(), 100u);
  a.end();
  EXPECT_EQ(h.manager->applied_limit(), 0u);
}

TEST(WiredManager, ReservationsCountButDoNotHoldTheLimitUp) {
  Harness h;
  auto sum = std::make_shared<SumPolicy>(1000);
  auto r = h.ticket(300, sum, TicketKind::reservation);
  r.start();
  EXPECT_TRUE(h.backend->applied.empty());  // nothing active: the baseline stays
  auto a = h.ticket(100, sum);
  EXPECT_EQ(a.start(), 400u);
  h.now += 2s;
  a.end();
  EXPECT_EQ(h.manager->applied_limit(), 0u);  // back to the baseline with only the reservation
  EXPECT_EQ(h.events.back().kind, Kind::baseline_restored);
  // The reservation still counts toward admission: 300 + 701 > 1000.
  auto big = h.ticket(701, sum);
  EXPECT_THROW(big.start({}, 1ms), Cancelled);
  r.end();
}

TEST(WiredManager, ShrinkWaitsForTheThresholdAndTheCooldownGrowthDoesNot) {
  Harness h;
  auto sum = std::make_shared<SumPolicy>(100000);
  auto a = h.ticket(1000, sum), b = h.ticket(100, sum), c = h.ticket(500, sum);
  a.start();
  b.start();
  c.start();
  EXPECT_EQ(h.manager->applied_limit(), 1600u);
  h.now += 5s;
  b.end();  // 1500: a 6% drop is below 25%
  EXPECT_EQ(h.manager->applied_limit(), 1600u);
  c.end();  // 1000: 37.5% drop, cooldown long over
  EXPECT_EQ(h.manager->applied_limit(), 1000u);
  auto d = h.ticket(2000, sum);
  d.start();  // growth right after a change
  EXPECT_EQ(h.manager->applied_limit(), 3000u);
  h.now += 500ms;
  d.end();  // 67% drop but only 0.5 s since the last change
  EXPECT_EQ(h.manager->applied_limit(), 3000u);
  h.now += 600ms;
  auto e = h.ticket(0, sum);
  e.start();  // the next recomputation after the cooldown shrinks
  EXPECT_EQ(h.manager->applied_limit(), 1000u);
  e.end();
  a.end();  // the last ticket restores the baseline at once
  EXPECT_EQ(h.manager->applied_limit(), 0u);
}

TEST(WiredManager, BaselineOverrideAndConfigurationOnlyWhenIdle) {
  WiredManagerConfig config;
  config.baseline_override = 4000;
  Harness h(config);
  h.backend->initial = 123;
  auto t = h.ticket(10, std::make_shared<MaxPolicy>());
  EXPECT_EQ(t.start(), 4000u);
  EXPECT_THROW(h.manager->configure({}), InvalidArgument);
  EXPECT_EQ(t.end(), 4000u);
  h.manager->configure({});
  EXPECT_EQ(t.start(), 4000u);  // no override: the last applied limit is the baseline
  t.end();
}

TEST(WiredManager, WaitingTicketIsAdmittedWhenCapacityFrees) {
  Harness h;
  auto sum = std::make_shared<SumPolicy>(100);
  auto a = h.ticket(60, sum), b = h.ticket(60, sum);
  a.start();
  auto waiting = std::async(std::launch::async, [&] { return b.start(); });
  while (h.manager->waiter_count() == 0) std::this_thread::yield();
  EXPECT_EQ(waiting.wait_for(20ms), std::future_status::timeout);
  a.end();
  EXPECT_EQ(waiting.get(), 60u);
  b.end();
  EXPECT_EQ(h.manager->waiter_count(), 0u);
}

TEST(WiredManager, CancellingAWaitThrowsAndRegistersNothing) {
  Harness h;
  auto sum = std::make_shared<SumPolicy>(100);
  auto a = h.ticket(60, sum), b = h.ticket(60, sum);
  a.start();
  std::stop_source stop;
  auto waiting = std::async(std::launch::async, [&] { return b.start(stop.get_token()); });
  while (h.manager->waiter_count() == 0) std::this_thread::yield();
  stop.request_stop();
  EXPECT_THROW(waiting.get(), Cancelled);
  EXPECT_EQ(h.manager->waiter_count(), 0u);
  EXPECT_EQ(h.manager->ticket_count(), 1u);
  EXPECT_TRUE(std::any_of(h.events.begin(), h.events.end(), [](const WiredEvent& e) {
    return e.kind == Kind::admission_cancelled && e.message == "stop requested";
  }));
  EXPECT_THROW(b.start({}, 5ms), Cancelled);  // timeout
  EXPECT_EQ(h.events.back().message, "timed out");
  a.end();
  // Alone and still too big: waiting could never end.
  EXPECT_THROW(h.ticket(101, sum).start(), OutOfMemory);
}

TEST(WiredManager, GuardEndsExactlyOnceAlsoOnExceptions) {
  Harness h;
  auto t = h.ticket(10, std::make_shared<SumPolicy>(100));
  EXPECT_THROW(with_wired_limit(t,
                                [&]() -> int {
                                  EXPECT_EQ(h.manager->ticket_count(), 1u);
                                  throw InvalidArgument("boom");
                                }),
               InvalidArgument);
  EXPECT_EQ(h.manager->ticket_count(), 0u);
  {
    WiredLimitGuard guard(t);
    EXPECT_EQ(guard.applied_limit(), 10u);
    EXPECT_EQ(guard.release(), 0u);
  }
  const auto ended = std::count_if(h.events.begin(), h.events.end(), [](const WiredEvent& e) {
    return e.kind == Kind::ticket_ended;
  });
  EXPECT_EQ(ended, 2);
  const auto kinds = h.kinds();
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), Kind::ticket_end_ignored), 0);
}

TEST(WiredManager, ApplyFailureIsAnEventAndAWarningAndTheBaselineStillReturns) {
  Harness h;
  h.backend->fail_above = 150;
  auto sum = std::make_shared<SumPolicy>(1000);
  auto a = h.ticket(100, sum), b = h.ticket(100, sum);
  a.start();
  EXPECT_EQ(b.start(), 100u);  // 200 failed: the last applied limit stays
  EXPECT_EQ(h.events.back().kind, Kind::limit_apply_failed);
  EXPECT_EQ(h.events.back().desired, 200u);
  EXPECT_EQ(h.events.back().message, "too much");
  ASSERT_EQ(h.warnings.size(), 1u);
  EXPECT_NE(h.warnings[0].find("too much"), std::string::npos);
  b.end();
  a.end();
  EXPECT_EQ(h.backend->applied.back(), 0u);
}

// Many threads start and end tickets of two policy groups (one capped, so admission
// waits); each applied limit must equal the formula over the tickets live right then.
TEST(WiredManager, ConcurrentTicketsKeepTheLimitEqualToTheFormula) {
  WiredManagerConfig config;
  config.shrink_threshold_ratio = 0;
  config.shrink_cooldown = 0s;
  Harness h(config);
  auto sum = std::make_shared<SumPolicy>(1000);
  auto max = std::make_shared<MaxPolicy>();
  std::map<uint64_t, std::pair<size_t, bool>> live;  // id -> (size, in the sum group)
  size_t checked = 0, mismatches = 0;
  auto check = h.manager->subscribe([&](const WiredEvent& e) {
    if (e.kind == Kind::ticket_started) live[e.ticket] = {e.size, e.policy == sum->id()};
    if (e.kind == Kind::ticket_ended) live.erase(e.ticket);
    if (e.kind != Kind::limit_applied) return;
    size_t sum_sizes = 0, max_size = 0;
    for (const auto& [id, t] : live) {
      if (t.second)
        sum_sizes += t.first;
      else
        max_size = std::max(max_size, t.first);
    }
    const size_t want = live.empty() ? 0 : std::max(std::min<size_t>(sum_sizes, 1000), max_size);
    ++checked;
    if (*e.applied != want) ++mismatches;
  });
  std::vector<std::thread> threads;
  for (int w = 0; w < 8; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937 rng(static_cast<unsigned>(w));
      for (int i = 0; i < 150; ++i) {
        const bool in_sum = rng() % 3 != 0;
        WiredTicket t(rng() % 400, in_sum ? std::shared_ptr<const WiredPolicy>(sum) : max,
                      TicketKind::active, h.manager.get());
        WiredLimitGuard guard(t);
        if (rng() % 4 == 0) std::this_thread::yield();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GT(checked, 100u);
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(h.manager->ticket_count(), 0u);
  EXPECT_EQ(h.manager->waiter_count(), 0u);
  EXPECT_EQ(h.manager->applied_limit(), 0u);
  EXPECT_TRUE(live.empty());
}

}  // namespace
}  // namespace lmx::generate
