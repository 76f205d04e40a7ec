#include "parity_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace lmx::testing {

Tensor read_tensor(const io::SafetensorsFile& f, const std::string& name) {
  const io::TensorInfo& info = f.at(name);
  return Tensor::wrap(const_cast<std::byte*>(info.data), info.shape, info.dtype, f.owner()).clone();
}

double relative_error(const Tensor& got, const Tensor& want) {
  auto g = got.to_float_vector(), w = want.to_float_vector();
  EXPECT_EQ(g.size(), w.size());
  double scale = 1.0, err = 0.0;
  for (float v : w) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  for (size_t i = 0; i < std::min(g.size(), w.size()); ++i) {
    err = std::max(err, static_cast<double>(std::fabs(g[i] - w[i])));
  }
  return err / scale;
}

}  // namespace lmx::testing
