// What the wired limit does on the CPU, checked against the kernel's own accounting:
// pinned regions show in VmLck (and per mapping in /proc/self/smaps) in the defined
// order and go away again; a failed mlock is an event, never a crash; a generation
// holding a ticket pins the model and its KV cache only while it runs. Plus the memory
// estimate (KV bytes against the caches a prefill really builds) and measure().
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "lmx/base/error.h"
#include "lmx/core/backend.h"
#include "lmx/core/residency.h"
#include "lmx/generate/generate.h"
#include "lmx/generate/wired_memory_backend.h"
#include "lmx/generate/wired_memory_estimate.h"
#include "lmx/models/load.h"
#include "lmx/models/quantize.h"
#include "lmx/nn/linear.h"
#include "lmx/nn/mlp.h"
#include "test_models.h"

namespace lmx::generate {
namespace {

using residency::RegionClass;
using residency::RegionRegistry;
constexpr size_t kMiB = size_t{1} << 20;

// An anonymous mapping between two inaccessible guard pages (so the kernel never merges
// it with a neighbour and smaps reports it alone); unmapped on destruction.
struct Mapping {
  explicit Mapping(size_t n) : bytes(n), page(static_cast<size_t>(sysconf(_SC_PAGE_SIZE))) {
    base = mmap(nullptr, n + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(base, MAP_FAILED);
    data = static_cast<char*>(base) + page;
    EXPECT_EQ(mprotect(data, n, PROT_READ | PROT_WRITE), 0);
  }
  ~Mapping() { munmap(base, bytes + 2 * page); }
  residency::Region region() const { return {data, bytes}; }
  size_t bytes, page;
  void* base;
  void* data;
};

// "Locked:" of the /proc/self/smaps entry holding `addr`, in bytes.
size_t locked_in_mapping(const void* addr) {
  std::ifstream in("/proc/self/smaps");
  const auto at = reinterpret_cast<uintptr_t>(addr);
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    uintptr_t begin = 0, end = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> begin >> dash >> end && dash == '-') {
      inside = begin <= at && at < end;
    } else if (inside && line.rfind("Locked:", 0) == 0) {
      return std::stoull(line.substr(7)) * 1024;
    }
  }
  return 0;
}

TEST(Residency, PinsWeightsFirstWithinTheLimitAndUnpinsToVmLck) {
  const size_t base = residency::locked_bytes();
  RegionRegistry registry;
  Mapping kv(kMiB), weights(kMiB);
  auto kv_handle =
      registry.add(RegionClass::kv_cache, {kv.region()});  // registered first, pinned second
  auto w_handle = registry.add(RegionClass::weights,
                               {weights.region(), weights.region()});  // overlap counts once
  EXPECT_EQ(registry.registered_bytes(), 2 * kMiB);

  const auto r = registry.pin(kMiB + kMiB / 2);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.wanted, 2 * kMiB);
  EXPECT_EQ(r.pinned, kMiB + kMiB / 2);
  EXPECT_EQ(residency::locked_bytes() - base, kMiB + kMiB / 2);
  EXPECT_EQ(locked_in_mapping(weights.data), kMiB);
  EXPECT_EQ(locked_in_mapping(kv.data), kMiB / 2);

  w_handle.reset();  // the weights leave: the KV region takes the whole budget
  EXPECT_EQ(locked_in_mapping(weights.data), 0u);
  EXPECT_EQ(locked_in_mapping(kv.data), kMiB);
  kv_handle.update({{kv.data, kMiB / 4}});  // the cache shrank
  EXPECT_EQ(registry.pinned_bytes(), kMiB / 4);
  EXPECT_EQ(registry.pin(0).pinned, 0u);
  EXPECT_EQ(residency::locked_bytes(), base);
}

// Drops CAP_IPC_LOCK and sets RLIMIT_MEMLOCK to 64 KiB (run in a child process), then
// pins 1 MiB through a manager: true when that gave an apply-failed event and a warning
// naming the limit, no exception, and the ticket's end unpinned what was locked.
bool failed_mlock_is_reported() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct caps[2]{};
  syscall(SYS_capget, &header, caps);
  caps[0].effective &= ~(1u << CAP_IPC_LOCK);
  caps[0].permitted &= ~(1u << CAP_IPC_LOCK);
  syscall(SYS_capset, &header, caps);
  const rlimit lim{64 * 1024, 64 * 1024};
  setrlimit(RLIMIT_MEMLOCK, &lim);
  RegionRegistry registry;
  Mapping m(kMiB);
  auto handle = registry.add(RegionClass::weights, {m.region()});
  std::vector<std::string> warnings;
  WiredManagerConfig config;
  config.warn = [&](const std::string& w) { warnings.push_back(w); };
  WiredMemoryManager manager(std::make_shared<CpuResidencyBackend>(registry), config);
  bool failed_event = false;
  auto sub = manager.subscribe([&](const WiredEvent& e) {
    failed_event |= e.kind == WiredEvent::Kind::limit_apply_failed &&
                    e.message.find("RLIMIT_MEMLOCK") != std::string::npos;
  });
  WiredTicket ticket(kMiB, std::make_shared<FixedPolicy>(kMiB), TicketKind::active, &manager);
  ticket.start();
  const bool partial = registry.pinned_bytes() < kMiB;
  ticket.end();
  return failed_event && partial && warnings.size() == 1 && registry.pinned_bytes() == 0;
}

TEST(Residency, FailedMlockIsAnApplyFailedEventNotACrash) {
  EXPECT_EXIT(std::exit(failed_mlock_is_reported() ? 0 : 1), ::testing::ExitedWithCode(0), "");
}

TEST(WeightRegions, RepackedMatricesReplaceTheirStoredTensors) {
  auto loaded = models::load_model(testing::fixture("llama"));
  models::quantize_model(*loaded.model, {.bits = 4, .group_size = 32});
  loaded.model->prepare_for_inference();
  const auto regions = weight_regions(*loaded.model);
  auto has = [&](const void* p) {
    return std::any_of(regions.begin(), regions.end(),
                       [&](const residency::Region& r) { return r.data == p; });
  };
  int quantized = 0;
  loaded.model->for_each_module([&](const std::string&, nn::Module& m) {
    auto* linear = dynamic_cast<nn::Linear*>(&m);
    if (!linear || !linear->weight().quantized()) return;
    const auto& q = linear->weight().quant();
    ASSERT_TRUE(q.prepared);
    EXPECT_TRUE(has(q.prepared->host_data()));
    for (const Tensor* t : {&q.w, &q.scales, &q.biases})
      EXPECT_FALSE(t->defined() && has(t->raw_data()));
    ++quantized;
  });
  EXPECT_GT(quantized, 0);
}

TEST(WeightRegions, MixtureOfExpertsPinsEachExpertsPackedCopy) {
  auto loaded = models::load_model(testing::fixture("mixtral"));
  models::quantize_model(*loaded.model, {.bits = 4, .group_size = 32});
  loaded.model->prepare_for_inference();
  const auto regions = weight_regions(*loaded.model);
  size_t experts = 0;
  loaded.model->for_each_module([&](const std::string&, nn::Module& m) {
    auto* s = dynamic_cast<nn::SwitchLinear*>(&m);
    if (!s) return;
    ASSERT_FALSE(s->prepared().empty());
    for (const auto& p : s->prepared()) {
      EXPECT_TRUE(std::any_of(regions.begin(), regions.end(),
                              [&](const residency::Region& r) { return r.data == p->host_data() && r.bytes == p->bytes(); }));
      ++experts;
    }
  });
  EXPECT_GT(experts, 0u);
  // Everything the forward pass reads is counted once: dense parameters + packed copies.
  EXPECT_EQ(region_bytes(regions), models::weight_bytes(*loaded.model).total);
}

TEST(MemoryEstimate, KvBytesMatchTheCachesAPrefillBuildsAndHonourLimits) {
  auto loaded = models::load_model(testing::fixture("llama"));
  auto& model = *loaded.model;
  const std::vector<int32_t> prompt = {1, 5, 9, 13, 17, 21, 25, 29, 33, 37};
  GenerateParameters p;
  p.max_tokens = 290;  // 300 positions: the caches grow to 512
  const MemoryEstimate e = estimate_memory(model, static_cast<int64_t>(prompt.size()), p);
  // 2 layers x (K + V) x 2 KV heads x 16 dims x f32 x 512 positions.
  EXPECT_EQ(e.kv_bytes, size_t{2 * 2 * 2 * 16 * 4 * 512});
  std::vector<int32_t> full(300, 3);
  EXPECT_EQ(region_bytes(kv_regions(prefill_cache(model, full, p))), e.kv_bytes);
  EXPECT_EQ(e.weight_bytes, region_bytes(weight_regions(model)));
  EXPECT_EQ(e.total_bytes, e.weight_bytes + e.kv_bytes + e.workspace_bytes);
  EXPECT_GT(e.workspace_bytes, 0u);
  p.max_kv_size = 64;
  EXPECT_EQ(estimate_memory(model, 10, p).kv_bytes, size_t{2 * 2 * 2 * 16 * 4 * 64});
  p.max_kv_size.reset();
  p.kv_bits = 4;
  p.kv_group_size = 16;
  // Per layer and position: 2 x 32 elements at 4 bits + 2 x 2 groups x (scale, bias) f32.
  EXPECT_EQ(estimate_memory(model, 10, p).kv_bytes, size_t{2 * 512 * (32 + 2 * 2 * 2 * 4)});
}

TEST(MemoryEstimate, GenerationThatCannotFitFailsBeforeRunning) {
  auto loaded = models::load_model(testing::fixture("llama"));
  GenerateParameters p;
  p.max_tokens = int64_t{1} << 40;
  try {
    generate_tokens(*loaded.model, {1, 2, 3}, p);
    FAIL() << "expected OutOfMemory";
  } catch (const OutOfMemory& e) {
    EXPECT_NE(std::string(e.what()).find("max_kv_size"), std::string::npos) << e.what();
  }
  p.max_kv_size = 64;  // a bounded cache fits
  TokenIteratorOptions o;
  o.available_memory = [] { return 64 * kMiB; };
  EXPECT_NO_THROW(TokenIterator(*loaded.model, {1, 2, 3}, p, nullptr, o));
  o.available_memory = [] { return size_t{1000}; };
  EXPECT_THROW(TokenIterator(*loaded.model, {1, 2, 3}, p, nullptr, o), OutOfMemory);
}

TEST(Measure, ReportsWeightsKvAndWorkspaceOfOnePrefill) {
  auto loaded = models::load_model(testing::fixture("llama"));
  const std::vector<int32_t> tokens(40, 7);
  const MemoryMeasurement m = measure(*loaded.model, tokens);
  EXPECT_EQ(m.weight_bytes, region_bytes(weight_regions(*loaded.model)));
  EXPECT_EQ(m.kv_bytes, size_t{2 * 2 * 2 * 16 * 4 * 256});
  EXPECT_GE(m.peak_active_bytes, m.weight_bytes + m.kv_bytes);
  EXPECT_EQ(m.workspace_bytes, m.peak_active_bytes - m.weight_bytes - m.kv_bytes);
  EXPECT_EQ(m.total_bytes, m.weight_bytes + m.kv_bytes + m.workspace_bytes);
}

// The shared manager (CPU residency) with a generation holding a ticket: VmLck rises by
// the weights and KV cache while tokens come and returns to where it was afterwards.
TEST(WiredGeneration, TicketPinsWeightsAndKvOverPrefillAndDecode) {
  auto loaded = models::load_model(testing::fixture("llama"));
  auto& model = *loaded.model;
  const size_t base = residency::locked_bytes();
  auto& manager = WiredMemoryManager::shared();
  std::vector<WiredEvent::Kind> kinds;
  auto sub = manager.subscribe([&](const WiredEvent& e) { kinds.push_back(e.kind); });
  GenerateParameters p;
  p.max_tokens = 8;
  p.temperature = 0;
  TokenIteratorOptions o;
  o.wired_ticket.emplace(16 * kMiB, std::make_shared<FixedPolicy>(16 * kMiB));
  TokenGeneration gen(model, {1, 2, 3, 4}, p, {}, nullptr, o);
  std::vector<size_t> locked;
  gen.run([&](const TokenLogprob&) {
    locked.push_back(residency::locked_bytes() - base);
    return true;
  });
  ASSERT_EQ(locked.size(), 8u);
  const size_t want = region_bytes(weight_regions(model));
  for (size_t l : locked) EXPECT_GE(l, want);  // weights (page-rounded) plus the KV cache
  EXPECT_EQ(residency::locked_bytes(), base);
  EXPECT_EQ(manager.ticket_count(), 0u);
  ASSERT_FALSE(kinds.empty());
  EXPECT_EQ(kinds.back(), WiredEvent::Kind::baseline_restored);
}

// A generation whose ticket waits for admission ends as cancelled when cancel() comes
// during the wait, and never runs its prefill.
TEST(WiredGeneration, CancelDuringAdmissionEndsTheStreamAsCancelled) {
  auto loaded = models::load_model(testing::fixture("llama"));
  WiredMemoryManager manager(std::make_shared<CpuResidencyBackend>(), WiredManagerConfig{});
  auto policy = std::make_shared<SumPolicy>(100);
  WiredTicket holder(60, policy, TicketKind::active, &manager);
  holder.start();
  GenerateParameters p;
  p.max_tokens = 4;
  TokenIteratorOptions o;
  o.wired_ticket.emplace(60, policy, TicketKind::active, &manager);
  TokenGeneration gen(*loaded.model, {1, 2, 3}, p, {}, nullptr, o);
  std::thread canceller([&] {
    while (manager.waiter_count() == 0) std::this_thread::yield();
    gen.cancel();
  });
  EXPECT_FALSE(gen.next().has_value());
  canceller.join();
  EXPECT_EQ(gen.info().stop_reason, StopReason::cancelled);
  EXPECT_EQ(gen.info().generated_tokens, 0);
  EXPECT_EQ(manager.ticket_count(), 1u);
  holder.end();
}

}  // namespace
}  // namespace lmx::generate
