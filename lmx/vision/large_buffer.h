// Large pixel buffers (frames, processor outputs of tens of MB): on Linux, backed by
// transparent huge pages, so filling them takes a few faults of 2 MiB instead of
// thousands of 4 KiB ones (which cost more than the pixel work on a 1080p image). As
// lmx's CPU allocator does for its large buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace lmx::vision::detail {

// A std::vector allocator whose blocks of 4 MiB and more are their own 2 MiB-aligned
// mappings, advised to huge pages before their first write (a malloc'd block's first
// bytes are written by malloc itself, so its first 2 MiB would be small pages); and whose
// value-less construct() leaves the value uninitialized (a resize() to tens of MB does not
// write zeros that are then overwritten).
template <typename T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}

  static constexpr size_t kHuge = size_t{2} << 20;
  static bool mapped(size_t n) { return n * sizeof(T) >= 2 * kHuge; }
  static size_t mapped_bytes(size_t n) { return (n * sizeof(T) + kHuge - 1) / kHuge * kHuge; }

  T* allocate(size_t n) {
#ifdef __linux__
    if (mapped(n)) {
      const size_t bytes = mapped_bytes(n);
      void* raw = mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (raw == MAP_FAILED) throw std::bad_alloc();
      const auto base = reinterpret_cast<uintptr_t>(raw);
      const uintptr_t aligned = (base + kHuge - 1) & ~(kHuge - 1);
      if (aligned > base) munmap(raw, aligned - base);
      if (base + kHuge > aligned) munmap(reinterpret_cast<void*>(aligned + bytes), base + kHuge - aligned);
      (void)madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
      return reinterpret_cast<T*>(aligned);
    }
#endif
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, size_t n) noexcept {
#ifdef __linux__
    if (mapped(n)) {
      munmap(p, mapped_bytes(n));
      return;
    }
#endif
    std::allocator<T>().deallocate(p, n);
  }
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(static_cast<Args&&>(args)...);
  }
  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const noexcept {
    return true;
  }
};

// For a std::vector with the standard allocator (an Image's bytes): reserved and advised
// to huge pages, with 2 MiB of address space more than asked so the used end lies in a
// whole huge page of the mapping (its first bytes, written by malloc, stay small pages).
template <typename T>
void reserve_large(std::vector<T>& v, size_t count) {
#ifdef __linux__
  constexpr uintptr_t kHuge = uintptr_t{2} << 20, kPage = 4096;
  if (count * sizeof(T) < 2 * kHuge) return v.reserve(count);
  v.reserve(count + kHuge / sizeof(T));
  const size_t bytes = v.capacity() * sizeof(T);
  const auto begin = reinterpret_cast<uintptr_t>(v.data());
  const uintptr_t first = begin & ~(kPage - 1), last = (begin + bytes + kPage - 1) & ~(kPage - 1);
  (void)madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#else
  v.reserve(count);
#endif
}

}  // namespace lmx::vision::detail
