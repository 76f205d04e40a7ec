#include "lmx/backend/cpu/ssm_scan.h"

#include <cmath>
#include <vector>

namespace lmx::cpu {
namespace {

// Eight independent partial sums so that the compiler can keep them in vector lanes
// (a single running sum is a serial dependency it may not reorder).
inline float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// row = decay * row + scale * v, elementwise over n (decay per element).
inline void decay_axpy(float* row, const float* decay, float scale, const float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) row[i] = decay[i] * row[i] + scale * v[i];
}

}  // namespace

void ssm_scan(const kernels::SsmScanArgs& a, ThreadPool& pool) {
  const int64_t H = a.heads, P = a.head_dim, N = a.state_dim, G = a.groups, L = a.seq;
  if (a.batch <= 0 || H <= 0 || L <= 0) return;
  const int64_t heads_per_group = H / G;
  // A head's work is L * P * N multiply-adds; give each thread several heads when small.
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(L * P * N, 1));
  pool.parallel_for(a.batch * H, grain, [&](int64_t i0, int64_t i1) {
    std::vector<float> decay(static_cast<size_t>(N));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / H, h = i % H, g = h / heads_per_group;
      float* S = a.state + i * P * N;  // [P, N]
      const float* ah = a.a + h * N;
      const float dh = a.d ? a.d[h] : 0.0f;
      for (int64_t t = 0; t < L; ++t) {
        const int64_t bt = b * L + t;
        const float dt = a.dt[bt * H + h];
        for (int64_t n = 0; n < N; ++n) decay[static_cast<size_t>(n)] = std::exp(dt * ah[n]);
        const float* x = a.x + (bt * H + h) * P;
        const float* B = a.b + (bt * G + g) * N;
        const float* C = a.c + (bt * G + g) * N;
        float* y = a.y + (bt * H + h) * P;
        for (int64_t p = 0; p < P; ++p) {
          float* row = S + p * N;
          decay_axpy(row, decay.data(), dt * x[p], B, N);
          y[p] = dot(row, C, N) + dh * x[p];
        }
      }
    }
  });
}

void gated_delta_scan(const kernels::GatedDeltaArgs& a, ThreadPool& pool) {
  const int64_t Hk = a.k_heads, Hv = a.v_heads, K = a.k_dim, V = a.v_dim, L = a.seq;
  if (a.batch <= 0 || Hv <= 0 || L <= 0) return;
  const int64_t v_per_k = Hv / Hk;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(L * K * V, 1));
  pool.parallel_for(a.batch * Hv, grain, [&](int64_t i0, int64_t i1) {
    std::vector<float> u(static_cast<size_t>(V));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / Hv, h = i % Hv, hk = h / v_per_k;
      float* S = a.state + i * K * V;  // [K, V]
      for (int64_t t = 0; t < L; ++t) {
        const int64_t bt = b * L + t;
        const float decay = std::exp(a.g[bt * Hv + h]);
        const float beta = a.beta[bt * Hv + h];
        const float* q = a.q + (bt * Hk + hk) * K;
        const float* k = a.k + (bt * Hk + hk) * K;
        const float* v = a.v + (bt * Hv + h) * V;
        float* o = a.out + (bt * Hv + h) * V;
        // Two passes over S (rows contiguous): u = (decay S)^T k = decay (S^T k), then
        // S = decay S + k u^T with the output o = S^T q read on the way.
        float* uu = u.data();
        for (int64_t j = 0; j < V; ++j) uu[j] = 0.0f;
        for (int64_t kk = 0; kk < K; ++kk) {
          const float* row = S + kk * V;
          const float kv = k[kk];
          for (int64_t j = 0; j < V; ++j) uu[j] += row[j] * kv;
        }
        for (int64_t j = 0; j < V; ++j) uu[j] = (v[j] - decay * uu[j]) * beta;
        for (int64_t j = 0; j < V; ++j) o[j] = 0.0f;
        for (int64_t kk = 0; kk < K; ++kk) {
          float* row = S + kk * V;
          const float kv = k[kk], qv = q[kk];
          for (int64_t j = 0; j < V; ++j) {
            row[j] = decay * row[j] + kv * uu[j];
            o[j] += row[j] * qv;
          }
        }
      }
    }
  });
}

}  // namespace lmx::cpu
