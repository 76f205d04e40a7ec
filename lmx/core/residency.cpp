#include "lmx/core/residency.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <tuple>

namespace lmx::residency {
namespace {

using Intervals = std::vector<std::pair<uintptr_t, uintptr_t>>;

uintptr_t page_size() {
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGE_SIZE));
  return page;
}

size_t total(const Intervals& set) {
  size_t n = 0;
  for (const auto& [b, e] : set) n += e - b;
  return n;
}

// a minus b; both sorted and disjoint.
Intervals subtract(const Intervals& a, const Intervals& b) {
  Intervals out;
  size_t j = 0;
  for (auto [begin, end] : a) {
    while (j < b.size() && b[j].second <= begin) ++j;
    for (size_t k = j; k < b.size() && b[k].first < end; ++k) {
      if (b[k].first > begin) out.emplace_back(begin, b[k].first);
      begin = std::max(begin, b[k].second);
    }
    if (begin < end) out.emplace_back(begin, end);
  }
  return out;
}

// Adds [begin, end) to a sorted disjoint set, merging neighbours.
void insert(Intervals& set, uintptr_t begin, uintptr_t end) {
  auto it = std::lower_bound(set.begin(), set.end(), std::make_pair(begin, end));
  it = set.insert(it, {begin, end});
  if (it != set.begin() && std::prev(it)->second >= it->first) {
    std::prev(it)->second = std::max(std::prev(it)->second, it->second);
    it = std::prev(set.erase(it));
  }
  while (std::next(it) != set.end() && std::next(it)->first <= it->second) {
    it->second = std::max(it->second, std::next(it)->second);
    set.erase(std::next(it));
  }
}

// The number after `key` in a /proc file whose lines read "Key:   1234 kB", in bytes.
size_t proc_kib_field(const char* file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) == 0) return std::stoull(line.substr(key.size())) * 1024;
  }
  return 0;
}

std::string format_mib(size_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

// Why locking `bytes` more failed, or "" when the range was simply unmapped (memory freed
// since it was registered), which is skipped.
std::string mlock_failure(int err, size_t bytes) {
  const auto rlimit = memlock_limit();
  const bool over_rlimit = rlimit && locked_bytes() + bytes > *rlimit;
  if (err == ENOMEM && !over_rlimit) return "";
  std::string why = "mlock of " + std::to_string(bytes) + " bytes failed: " + std::strerror(err);
  if (rlimit) why += " (RLIMIT_MEMLOCK is " + format_mib(*rlimit) + "; raise it with `ulimit -l`)";
  return why;
}

}  // namespace

RegionRegistry& RegionRegistry::global() {
  // Never destroyed: handles held by other statics may be dropped after main returns.
  static RegionRegistry* registry = new RegionRegistry();
  return *registry;
}

RegionRegistry::~RegionRegistry() {
  for (const auto& [b, e] : locked_) munlock(reinterpret_cast<void*>(b), e - b);
}

RegionRegistry::Handle& RegionRegistry::Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    registry_ = std::exchange(o.registry_, nullptr);
    id_ = o.id_;
  }
  return *this;
}

void RegionRegistry::Handle::update(std::vector<Region> regions) {
  if (registry_) registry_->update(id_, std::move(regions));
}

void RegionRegistry::Handle::reset() {
  if (auto* r = std::exchange(registry_, nullptr)) r->remove(id_);
}

RegionRegistry::Handle RegionRegistry::add(RegionClass cls, std::vector<Region> regions) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t id = next_id_++;
  entries_[id] = Entry{cls, std::move(regions)};
  if (limit_ > 0) repin_locked();
  return Handle(this, id);
}

void RegionRegistry::update(uint64_t id, std::vector<Region> regions) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  const bool same = std::equal(
      regions.begin(), regions.end(), it->second.regions.begin(), it->second.regions.end(),
      [](const Region& a, const Region& b) { return a.data == b.data && a.bytes == b.bytes; });
  if (same) return;
  it->second.regions = std::move(regions);
  if (limit_ > 0 || !locked_.empty()) repin_locked();
}

void RegionRegistry::remove(uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (entries_.erase(id) && !locked_.empty()) repin_locked();
}

PinResult RegionRegistry::pin(size_t limit) {
  std::lock_guard<std::mutex> lock(mutex_);
  limit_ = limit;
  return repin_locked();
}

size_t RegionRegistry::limit() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return limit_;
}

size_t RegionRegistry::pinned_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return total(locked_);
}

size_t RegionRegistry::registered_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  Intervals all;
  const uintptr_t page = page_size();
  for (const auto& [id, e] : entries_)
    for (const Region& r : e.regions) {
      if (r.bytes == 0) continue;
      const auto at = reinterpret_cast<uintptr_t>(r.data);
      insert(all, at / page * page, (at + r.bytes + page - 1) / page * page);
    }
  return total(all);
}

PinResult RegionRegistry::repin_locked() {
  const uintptr_t page = page_size();
  std::vector<std::tuple<RegionClass, uint64_t, const Entry*>> order;
  for (const auto& [id, e] : entries_) order.emplace_back(e.cls, id, &e);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return std::tie(std::get<0>(a), std::get<1>(a)) < std::tie(std::get<0>(b), std::get<1>(b));
  });

  // Walk the regions in pin order, page-rounded, each page counted once, until the
  // limit is spent. `wanted` is the union of every region; `lock` the part within the limit.
  Intervals wanted, lock;
  size_t budget = limit_ / page * page;
  for (const auto& item : order) {
    for (const Region& r : std::get<2>(item)->regions) {
      if (r.bytes == 0) continue;
      const auto at = reinterpret_cast<uintptr_t>(r.data);
      const Intervals fresh =
          subtract({{at / page * page, (at + r.bytes + page - 1) / page * page}}, wanted);
      for (const auto& [b, e] : fresh) {
        insert(wanted, b, e);
        const size_t take = std::min<size_t>(e - b, budget);
        if (take > 0) insert(lock, b, b + take);
        budget -= take;
      }
    }
  }

  for (const auto& [b, e] : subtract(locked_, lock)) munlock(reinterpret_cast<void*>(b), e - b);
  // Lock the whole set each time, not only what is new: a buffer freed and mapped again
  // at the same address would otherwise stay unlocked.
  PinResult result;
  result.limit = limit_;
  result.wanted = total(wanted);
  Intervals now;
  for (const auto& [b, e] : lock) {
    if (mlock(reinterpret_cast<void*>(b), e - b) == 0) {
      insert(now, b, e);
      continue;
    }
    // Keep going after a failure: intervals locked before stay locked and must be recorded.
    std::string why = mlock_failure(errno, e - b);
    if (result.error.empty()) result.error = std::move(why);
  }
  locked_ = std::move(now);
  result.pinned = total(locked_);
  return result;
}

size_t locked_bytes() { return proc_kib_field("/proc/self/status", "VmLck:"); }

std::optional<size_t> memlock_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_MEMLOCK, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return std::nullopt;
  return static_cast<size_t>(lim.rlim_cur);
}

size_t physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  return (pages > 0 && page > 0) ? static_cast<size_t>(pages) * static_cast<size_t>(page) : 0;
}

size_t available_memory() { return proc_kib_field("/proc/meminfo", "MemAvailable:"); }

}  // namespace lmx::residency
