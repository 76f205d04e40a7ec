// Iteration over N operands that share a logical shape but have their own strides
// (broadcast operands have stride 0). Adjacent dimensions that are contiguous for
// every operand are merged first, so most loops run as one long inner loop.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "lmx/core/tensor.h"

namespace lmx::detail {

template <size_t N>
struct StridedLayout {
  Shape shape;                          // merged dims, outer to inner
  std::array<Shape, N> strides;         // per operand, in elements
  std::array<int64_t, N> offsets{};     // per operand, in elements
};

template <size_t N>
StridedLayout<N> make_layout(const Shape& shape, const std::array<const Shape*, N>& strides,
                             const std::array<int64_t, N>& offsets) {
  StridedLayout<N> out;
  out.offsets = offsets;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;  // size-1 dims contribute nothing
    bool merge = !out.shape.empty();
    if (merge) {
      for (size_t k = 0; k < N; ++k) {
        if (out.strides[k].back() != (*strides[k])[d] * shape[d]) merge = false;
      }
    }
    if (merge) {
      out.shape.back() *= shape[d];
      for (size_t k = 0; k < N; ++k) out.strides[k].back() = (*strides[k])[d];
    } else {
      out.shape.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) out.strides[k].push_back((*strides[k])[d]);
    }
  }
  if (out.shape.empty()) {
    out.shape.push_back(1);
    for (size_t k = 0; k < N; ++k) out.strides[k].push_back(0);
  }
  return out;
}

// Calls fn(offsets, count, inner_strides) for each run of the innermost dimension,
// over the outer index range [outer_begin, outer_end) (outer = all but the last dim,
// flattened), so callers can split the outer range across threads.
template <size_t N, typename Fn>
void strided_for(const StridedLayout<N>& l, int64_t outer_begin, int64_t outer_end, Fn&& fn) {
  const int nd = static_cast<int>(l.shape.size());
  const int64_t inner = l.shape[nd - 1];
  std::array<int64_t, N> inner_strides;
  for (size_t k = 0; k < N; ++k) inner_strides[k] = l.strides[k][nd - 1];
  // Decompose outer_begin into a multi-index over dims [0, nd-1).
  std::vector<int64_t> idx(static_cast<size_t>(nd > 1 ? nd - 1 : 0), 0);
  std::array<int64_t, N> off = l.offsets;
  int64_t rem = outer_begin;
  for (int d = nd - 2; d >= 0; --d) {
    idx[d] = rem % l.shape[d];
    rem /= l.shape[d];
    for (size_t k = 0; k < N; ++k) off[k] += idx[d] * l.strides[k][d];
  }
  for (int64_t o = outer_begin; o < outer_end; ++o) {
    fn(off, inner, inner_strides);
    for (int d = nd - 2; d >= 0; --d) {
      ++idx[d];
      for (size_t k = 0; k < N; ++k) off[k] += l.strides[k][d];
      if (idx[d] < l.shape[d]) break;
      for (size_t k = 0; k < N; ++k) off[k] -= idx[d] * l.strides[k][d];
      idx[d] = 0;
    }
  }
}

template <size_t N>
int64_t outer_count(const StridedLayout<N>& l) {
  int64_t n = 1;
  for (size_t d = 0; d + 1 < l.shape.size(); ++d) n *= l.shape[d];
  return n;
}

}  // namespace lmx::detail
