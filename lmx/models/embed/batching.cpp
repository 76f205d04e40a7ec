#include "lmx/models/embed/batching.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "lmx/base/error.h"

namespace lmx::models::embed {
namespace {
constexpr int64_t kMinBatchTokens = 4;
}  // namespace

Tensor run_in_batches(std::span<const TokenInput> inputs, int32_t pad_id, int64_t max_batch_tokens,
                      const std::function<Tensor(const TokenBatch&)>& fn,
                      const std::function<void(size_t, size_t)>& progress) {
  if (inputs.empty()) throw InvalidArgument("embed: no inputs");
  if (max_batch_tokens < 1) throw InvalidArgument("embed: the token budget per batch must be at least 1");
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].ids.empty()) throw InvalidArgument("embed: input " + std::to_string(i) + " has no tokens");
    if (!inputs[i].type_ids.empty() && inputs[i].type_ids.size() != inputs[i].ids.size()) {
      throw InvalidArgument("embed: input " + std::to_string(i) + " has " + std::to_string(inputs[i].type_ids.size()) +
                            " type ids for " + std::to_string(inputs[i].ids.size()) + " tokens");
    }
  }
  std::vector<size_t> order(inputs.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return inputs[a].ids.size() > inputs[b].ids.size(); });
  Tensor out;
  float* dst = nullptr;
  int64_t dim = 0;
  size_t done = 0;
  while (done < order.size()) {
    // Longest first: the first row sets the padded length of the micro-batch.
    const int64_t longest = static_cast<int64_t>(inputs[order[done]].ids.size());
    const int64_t rows = std::clamp<int64_t>(max_batch_tokens / longest, 1, static_cast<int64_t>(order.size() - done));
    // At least kMinBatchTokens padded tokens: the CPU runs fewer rows through matvec kernels
    // (another summation order than the GEMM), which would make a lone short input differ
    // in its last bits from the same input inside a batch.
    const int64_t L = std::max(longest, (kMinBatchTokens + rows - 1) / rows);
    std::vector<int32_t> ids(static_cast<size_t>(rows * L), pad_id), types(static_cast<size_t>(rows * L), 0);
    TokenBatch batch;
    bool any_types = false;
    for (int64_t r = 0; r < rows; ++r) {
      const TokenInput& in = inputs[order[done + static_cast<size_t>(r)]];
      std::copy(in.ids.begin(), in.ids.end(), ids.begin() + r * L);
      std::copy(in.type_ids.begin(), in.type_ids.end(), types.begin() + r * L);
      any_types = any_types || !in.type_ids.empty();
      batch.lengths.push_back(static_cast<int64_t>(in.ids.size()));
    }
    batch.ids = Tensor::from_vector(ids, {rows, L});
    if (any_types) batch.type_ids = Tensor::from_vector(types, {rows, L});
    Tensor y = fn(batch).to(Device::cpu()).to(Dtype::f32).contiguous();  // [rows, dim]
    if (y.ndim() != 2 || y.dim(0) != rows) throw ShapeError("embed: a batch of " + std::to_string(rows) + " gave " + shape_str(y.shape()));
    if (!out.defined()) {
      dim = y.dim(1);
      out = Tensor::empty({static_cast<int64_t>(inputs.size()), dim}, Dtype::f32);
      dst = out.data<float>();
    }
    const float* src = y.data<float>();
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(dst + static_cast<int64_t>(order[done + static_cast<size_t>(r)]) * dim, src + r * dim,
                  static_cast<size_t>(dim) * sizeof(float));
    }
    done += static_cast<size_t>(rows);
    if (progress) progress(done, order.size());
  }
  return out;
}

bool truncate_input(TokenInput& input, int64_t max_length) {
  if (max_length <= 0 || static_cast<int64_t>(input.ids.size()) <= max_length) return false;
  input.ids.resize(static_cast<size_t>(max_length));
  if (!input.type_ids.empty()) input.type_ids.resize(static_cast<size_t>(max_length));
  return true;
}

}  // namespace lmx::models::embed
