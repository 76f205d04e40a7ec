#include "lmx/core/ops/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "lmx/base/thread_pool.h"
#include "lmx/core/backend.h"
#include "lmx/core/detail/element_access.h"
#include "lmx/base/error.h"

namespace lmx::ops {
namespace {

enum class Kind { sum, mean, max, min, logsumexp, argmax };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::sum: return "sum";
    case Kind::mean: return "mean";
    case Kind::max: return "max";
    case Kind::min: return "min";
    case Kind::logsumexp: return "logsumexp";
    case Kind::argmax: return "argmax";
  }
  return "reduce";
}

void check_defined(const Tensor& x, const char* op) {
  if (!x.defined()) throw InvalidArgument(std::string(op) + ": undefined tensor argument");
}

void check_input(const Tensor& x, const char* op) {
  check_defined(x, op);
  if (!x.device().is_cpu()) {
    throw Unsupported(std::string(op) + ": no kernel for device " + x.device().str());
  }
}

ReduceKernel kernel_of(Kind k) {
  switch (k) {
    case Kind::sum: return ReduceKernel::sum;
    case Kind::mean: return ReduceKernel::mean;
    case Kind::max: return ReduceKernel::max;
    case Kind::min: return ReduceKernel::min;
    case Kind::logsumexp: return ReduceKernel::logsumexp;
    case Kind::argmax: return ReduceKernel::argmax;
  }
  return ReduceKernel::sum;
}

int normalize(const Tensor& x, int axis, const char* op) {
  int n = x.ndim();
  if (axis < -n || axis >= n) {
    throw InvalidArgument(std::string(op) + ": axis " + std::to_string(axis) +
                          " is out of range for shape " + shape_str(x.shape()));
  }
  return axis < 0 ? axis + n : axis;
}

// Moves `axis` last and makes the data contiguous: rows of length dim(axis).
Tensor rows_view(const Tensor& x, int axis) {
  std::vector<int> perm;
  for (int i = 0; i < x.ndim(); ++i)
    if (i != axis) perm.push_back(i);
  perm.push_back(axis);
  return x.permute(perm).contiguous();
}

Dtype result_dtype(Kind k, Dtype in) {
  if (k == Kind::argmax) return Dtype::i32;
  if (is_floating(in)) return in;
  if (k == Kind::sum) return Dtype::i64;
  if (k == Kind::max || k == Kind::min) return in;
  return Dtype::f32;
}

double reduce_row(Kind k, const void* base, Dtype dt, int64_t begin, int64_t n) {
  switch (k) {
    case Kind::sum:
    case Kind::mean: {
      double s = 0;
      if (dt == Dtype::f32) {
        const float* p = static_cast<const float*>(base) + begin;
        for (int64_t i = 0; i < n; ++i) s += p[i];
      } else {
        for (int64_t i = 0; i < n; ++i) s += detail::load_as_double(base, dt, begin + i);
      }
      return k == Kind::mean ? s / static_cast<double>(n) : s;
    }
    case Kind::max:
    case Kind::min: {
      double m = detail::load_as_double(base, dt, begin);
      for (int64_t i = 1; i < n && !std::isnan(m); ++i) {
        double v = detail::load_as_double(base, dt, begin + i);
        if (std::isnan(v) || (k == Kind::max ? v > m : v < m)) m = v;
      }
      return m;
    }
    case Kind::logsumexp: {
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t i = 0; i < n; ++i) m = std::max(m, detail::load_as_double(base, dt, begin + i));
      if (std::isinf(m)) return m;
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += std::exp(detail::load_as_double(base, dt, begin + i) - m);
      return m + std::log(s);
    }
    case Kind::argmax: {
      int64_t best = 0;
      if (dt == Dtype::f32) {
        const float* p = static_cast<const float*>(base) + begin;
        float m = p[0];
        for (int64_t i = 1; i < n && !std::isnan(m); ++i) {
          if (p[i] > m || std::isnan(p[i])) {
            m = p[i];
            best = i;
          }
        }
        return static_cast<double>(best);
      }
      double m = detail::load_as_double(base, dt, begin);
      for (int64_t i = 1; i < n && !std::isnan(m); ++i) {
        double v = detail::load_as_double(base, dt, begin + i);
        if (v > m || std::isnan(v)) {
          m = v;
          best = i;
        }
      }
      return static_cast<double>(best);
    }
  }
  return 0;
}

Tensor reduce(Kind k, const Tensor& x, int axis, bool keepdims) {
  const char* name = kind_name(k);
  check_defined(x, name);
  if (!x.device().is_cpu() && !is_floating(x.dtype())) {
    throw Unsupported(std::string(name) + ": no kernel for " + std::string(dtype_name(x.dtype())) + " on device " +
                      x.device().str());
  }
  axis = normalize(x, axis, name);
  const int64_t n = x.dim(axis);
  if (n == 0 && k != Kind::sum) {
    throw InvalidArgument(std::string(name) + ": cannot reduce an empty axis of shape " +
                          shape_str(x.shape()));
  }
  Tensor rows = rows_view(x, axis);
  Shape out_shape = x.shape();
  if (keepdims) {
    out_shape[axis] = 1;
  } else {
    out_shape.erase(out_shape.begin() + axis);
  }
  if (!x.device().is_cpu()) {
    Tensor out = Tensor::empty(out_shape, result_dtype(k, x.dtype()), x.device());
    if (out.numel() > 0)
      backend_for(x.device()).reduce_rows(kernel_of(k), rows.raw_data(), x.dtype(), out.numel(), n, out.raw_data());
    return out;
  }
  Tensor out = Tensor::empty(out_shape, result_dtype(k, x.dtype()));
  const int64_t nrows = out.numel();
  const void* base = rows.raw_data();
  void* ob = out.raw_data();
  auto body = [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      double v = n == 0 ? 0.0 : reduce_row(k, base, x.dtype(), r * n, n);
      if (is_floating(out.dtype())) {
        detail::store_from_double(ob, out.dtype(), r, v);
      } else if (k == Kind::sum && !is_floating(x.dtype())) {
        int64_t s = 0;
        for (int64_t i = 0; i < n; ++i) s += detail::load_as_int(base, x.dtype(), r * n + i);
        detail::store_from_int(ob, out.dtype(), r, s);
      } else {
        detail::store_from_int(ob, out.dtype(), r, static_cast<int64_t>(v));
      }
    }
  };
  if (nrows * n >= (1 << 16) && nrows > 1) {
    ThreadPool::global().parallel_for(nrows, std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(n, 1)), body);
  } else {
    body(0, nrows);
  }
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, int axis, bool keepdims) { return reduce(Kind::sum, x, axis, keepdims); }
Tensor mean(const Tensor& x, int axis, bool keepdims) { return reduce(Kind::mean, x, axis, keepdims); }
Tensor max(const Tensor& x, int axis, bool keepdims) { return reduce(Kind::max, x, axis, keepdims); }
Tensor min(const Tensor& x, int axis, bool keepdims) { return reduce(Kind::min, x, axis, keepdims); }
Tensor logsumexp(const Tensor& x, int axis, bool keepdims) {
  return reduce(Kind::logsumexp, x, axis, keepdims);
}
Tensor argmax(const Tensor& x, int axis, bool keepdims) {
  return reduce(Kind::argmax, x, axis, keepdims);
}

Tensor sum_all(const Tensor& x) { return sum(x.reshape({-1}), 0); }
Tensor max_all(const Tensor& x) { return max(x.reshape({-1}), 0); }

std::pair<Tensor, Tensor> top_k(const Tensor& x, int64_t k) {
  check_input(x, "top_k");
  if (x.ndim() == 0) throw InvalidArgument("top_k: input must have at least one dimension");
  const int64_t n = x.dim(-1);
  if (k < 1 || k > n) {
    throw InvalidArgument("top_k: k = " + std::to_string(k) + " must be in [1, " +
                          std::to_string(n) + "] for shape " + shape_str(x.shape()));
  }
  Tensor rows = x.contiguous();
  Shape out_shape = x.shape();
  out_shape.back() = k;
  Tensor values = Tensor::empty(out_shape, x.dtype());
  Tensor indices = Tensor::empty(out_shape, Dtype::i32);
  const int64_t nrows = n == 0 ? 0 : x.numel() / n;
  const void* base = rows.raw_data();
  std::vector<int32_t> idx(static_cast<size_t>(n));
  for (int64_t r = 0; r < nrows; ++r) {
    std::iota(idx.begin(), idx.end(), 0);
    auto val = [&](int32_t i) { return detail::load_as_double(base, x.dtype(), r * n + i); };
    auto greater = [&](int32_t a, int32_t b) {
      double va = val(a), vb = val(b);
      bool na = std::isnan(va), nb = std::isnan(vb);
      if (na != nb) return na;  // NaN sorts first, like argmax
      if (va != vb && !na) return va > vb;
      return a < b;
    };
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), greater);
    for (int64_t j = 0; j < k; ++j) {
      detail::store_from_double(values.raw_data(), x.dtype(), r * k + j, val(idx[j]));
      indices.data<int32_t>()[r * k + j] = idx[j];
    }
  }
  return {values, indices};
}

Tensor argsort(const Tensor& x, bool descending) {
  check_input(x, "argsort");
  if (x.ndim() == 0) throw InvalidArgument("argsort: input must have at least one dimension");
  const int64_t n = x.dim(-1);
  Tensor rows = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), Dtype::i32);
  const int64_t nrows = n == 0 ? 0 : x.numel() / n;
  const void* base = rows.raw_data();
  for (int64_t r = 0; r < nrows; ++r) {
    int32_t* o = out.data<int32_t>() + r * n;
    std::iota(o, o + n, 0);
    auto val = [&](int32_t i) { return detail::load_as_double(base, x.dtype(), r * n + i); };
    std::stable_sort(o, o + n, [&](int32_t a, int32_t b) {
      return descending ? val(a) > val(b) : val(a) < val(b);
    });
  }
  return out;
}

int64_t greedy_argmax(std::span<const float> x) {
  if (x.size() <= 1) return 0;
  return backend_for(Device::cpu()).argmax_f32(x.data(), static_cast<int64_t>(x.size()));
}

}  // namespace lmx::ops
