#include "lmx/backend/cpu/rope.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "lmx/backend/cpu/cpu_features.h"
#include "lmx/backend/cpu/rope_avx2.h"
#include "lmx/backend/cpu/rope_avx512.h"

namespace lmx::cpu {

namespace {

// One head vector with arbitrary element strides; reads everything before writing so
// that exact aliasing (in place) is safe.
void rope_head_scalar(const float* x,
                      int64_t xs,
                      float* out,
                      int64_t os,
                      int64_t head_dim,
                      int64_t half,
                      bool traditional,
                      const float* c,
                      const float* s) {
  for (int64_t i = 0; i < half; ++i) {
    const int64_t a = traditional ? 2 * i : i;
    const int64_t b = traditional ? 2 * i + 1 : i + half;
    const float x0 = x[a * xs], x1 = x[b * xs];
    out[a * os] = x0 * c[i] - x1 * s[i];
    out[b * os] = x1 * c[i] + x0 * s[i];
  }
  for (int64_t i = 2 * half; i < head_dim; ++i) out[i * os] = x[i * xs];
}

}  // namespace

void rope(const float* x, float* out, const RopeOptions& o, ThreadPool& pool) {
  const int64_t positions = o.batch * o.seq;
  if (positions <= 0 || o.heads <= 0 || o.head_dim <= 0) return;
  const int64_t half = o.rotary_dim / 2;
  // The vector heads need unit element strides; the scalar one takes any.
  detail::RopeHeadFn head_fn = nullptr;
#ifdef LMX_CPU_X86
  if (o.x_strides[3] == 1 && o.out_strides[3] == 1) {
    if (cpu_features().use_avx512())
      head_fn = detail::kRopeHeadAvx512;
    else if (cpu_features().use_avx2())
      head_fn = detail::kRopeHeadAvx2;
  }
#endif
  // One work item = one (batch, position): its cos/sin table serves every head.
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(o.heads * o.head_dim, 1));
  pool.parallel_for(positions, grain, [&](int64_t p0, int64_t p1) {
    std::vector<float> table(static_cast<size_t>(2 * half));
    float* c = table.data();
    float* s = c + half;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t b = p / o.seq, t = p % o.seq;
      const int64_t pos =
          o.positions ? o.positions[p] : o.offset + (o.batch_offsets ? o.batch_offsets[b] : 0) + t;
      const float fpos = static_cast<float>(pos);
      for (int64_t i = 0; i < half; ++i) {
        const float angle = fpos * o.inv_freq[i];  // rounded to f32, as HF
        c[i] = std::cos(angle) * o.mscale;
        s[i] = std::sin(angle) * o.mscale;
      }
      for (int64_t h = 0; h < o.heads; ++h) {
        const float* xh = x + b * o.x_strides[0] + h * o.x_strides[1] + t * o.x_strides[2];
        float* oh = out + b * o.out_strides[0] + h * o.out_strides[1] + t * o.out_strides[2];
        if (head_fn) {
          head_fn(xh, oh, o.head_dim, half, o.traditional, c, s);
          continue;
        }
        rope_head_scalar(xh, o.x_strides[3], oh, o.out_strides[3], o.head_dim, half,
                         o.traditional, c, s);
      }
    }
  });
}

}  // namespace lmx::cpu
