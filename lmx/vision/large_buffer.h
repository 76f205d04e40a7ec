// Large pixel buffers (frames, processor outputs of tens of MB): reserved and, on Linux,
// advised to use transparent huge pages before they are first written, so filling them
// takes a few faults of 2 MiB instead of thousands of 4 KiB ones (which cost more than
// the pixel work on a 1080p image). As lmx's CPU allocator does for its large buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace lmx::vision::detail {

template <typename T>
void reserve_large(std::vector<T>& v, size_t count) {
  v.reserve(count);
#ifdef __linux__
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const size_t bytes = v.capacity() * sizeof(T);
  if (bytes < 2 * kHuge) return;
  const auto begin = reinterpret_cast<uintptr_t>(v.data());
  const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1), last = (begin + bytes) & ~(kHuge - 1);
  if (last > first) (void)madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#endif
}

}  // namespace lmx::vision::detail
