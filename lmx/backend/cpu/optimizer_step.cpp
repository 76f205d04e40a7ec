#include "lmx/backend/cpu/optimizer_step.h"

#include <cmath>

namespace lmx::cpu {

// Each operation rounds to f32 on its own: the build has no -ffp-contract=fast (ISO C++)
// and this file no FMA target, so nothing is fused into a different rounding.
void adam_step(const kernels::AdamStepArgs& a) {
  for (int64_t i = 0; i < a.n; ++i) {
    const float g = a.g[i];
    const float m = a.m[i] * a.beta1 + g * a.one_minus_beta1;
    const float v = a.v[i] * a.beta2 + (g * g) * a.one_minus_beta2;
    a.m[i] = m, a.v[i] = v;
    const float update = (m / a.m_divisor) / (std::sqrt(v / a.v_divisor) + a.eps);
    a.w_out[i] = a.w[i] * a.decay - update * a.lr;
  }
}

}  // namespace lmx::cpu
