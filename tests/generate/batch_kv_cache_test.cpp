// BatchKVCache under random joins, leaves and steps (continuous batching), against a
// reference that keeps each row's keys and values as a plain list: after every operation
// each row's row_state is exactly its list, the padded layout agrees (left padding +
// length = offset), the fetched keys of a step hold every row's list at its padded
// positions, and the mask shows each row exactly its own positions.
#include "lmx/generate/batch_kv_cache.h"

#include <gtest/gtest.h>

#include <random>

namespace lmx {
namespace {

using generate::BatchKVCache;

constexpr int64_t kHeads = 2, kDim = 3;

// A row's positions as [1, heads, n, dim] with values that name the row's id, the
// position and (values only) a marker: keys id * 1000 + position, values + 0.5.
std::vector<float> row_values(int64_t id, int64_t from, int64_t n, bool values) {
  std::vector<float> out;
  for (int64_t h = 0; h < kHeads; ++h)
    for (int64_t p = from; p < from + n; ++p)
      for (int64_t d = 0; d < kDim; ++d)
        out.push_back(static_cast<float>(id * 1000 + p) + (values ? 0.5f : 0.0f) + 0.01f * static_cast<float>(h * kDim + d));
  return out;
}

struct Row {
  int64_t id = 0, length = 0;
};

void expect_rows(const BatchKVCache& cache, const std::vector<Row>& rows, const std::string& what) {
  ASSERT_EQ(cache.rows(), static_cast<int64_t>(rows.size())) << what;
  const auto pad = cache.left_padding();
  for (size_t b = 0; b < rows.size(); ++b) {
    const Row& r = rows[b];
    EXPECT_EQ(pad[b] + r.length, cache.offset()) << what << " row " << b;
    const auto st = cache.row_state(static_cast<int64_t>(b));
    if (r.length == 0) {
      EXPECT_TRUE(st.empty() || st[0].dim(2) == 0) << what << " row " << b;
      continue;
    }
    ASSERT_EQ(st.size(), 2u) << what << " row " << b;
    ASSERT_EQ(st[0].shape(), (Shape{1, kHeads, r.length, kDim})) << what << " row " << b;
    EXPECT_EQ(st[0].contiguous().to_float_vector(), row_values(r.id, 0, r.length, false)) << what << " row " << b;
    EXPECT_EQ(st[1].contiguous().to_float_vector(), row_values(r.id, 0, r.length, true)) << what << " row " << b;
  }
  // The mask of one query per row: visible exactly from the row's first position on.
  if (rows.empty() || cache.offset() == 0) return;
  const auto m = cache.make_mask(1, 0).to_float_vector();
  const int64_t L = cache.offset();
  for (size_t b = 0; b < rows.size(); ++b)
    for (int64_t j = 0; j < L; ++j)
      EXPECT_EQ(m[b * static_cast<size_t>(L) + static_cast<size_t>(j)] == 0.0f, j >= pad[b]) << what << " row " << b;
}

TEST(BatchKVCache, RandomJoinsLeavesAndStepsKeepEveryRowsKeys) {
  std::mt19937 rng(2024);
  for (int64_t step : {4, 256}) {
    BatchKVCache cache({}, step);
    std::vector<Row> rows;
    int64_t next_id = 1;
    for (int op = 0; op < 300; ++op) {
      const int kind = std::uniform_int_distribution<int>(0, 9)(rng);
      std::string what = "step " + std::to_string(step) + " op " + std::to_string(op);
      if (kind < 3 && rows.size() < 20) {  // 1-4 rows join, 0-12 positions each
        std::vector<std::pair<Tensor, Tensor>> added;
        const int a = std::uniform_int_distribution<int>(1, 4)(rng);
        for (int i = 0; i < a; ++i) {
          const Row r{next_id++, std::uniform_int_distribution<int64_t>(0, 12)(rng)};
          if (r.length == 0) {
            added.emplace_back();
          } else {
            added.emplace_back(Tensor::from_vector(row_values(r.id, 0, r.length, false), {1, kHeads, r.length, kDim}),
                               Tensor::from_vector(row_values(r.id, 0, r.length, true), {1, kHeads, r.length, kDim}));
          }
          rows.push_back(r);
        }
        cache.add_rows(added);
        what += " join";
      } else if (kind < 5 && !rows.empty()) {  // some rows leave
        std::vector<int64_t> gone;
        for (size_t b = 0; b < rows.size(); ++b)
          if (std::uniform_int_distribution<int>(0, 2)(rng) == 0) gone.push_back(static_cast<int64_t>(b));
        cache.remove_rows(gone);
        for (size_t i = gone.size(); i-- > 0;) rows.erase(rows.begin() + gone[i]);
        what += " leave";
      } else if (!rows.empty()) {  // a decode step: one position per row
        std::vector<float> k, v;
        for (size_t b = 0; b < rows.size(); ++b) {
          const auto kb = row_values(rows[b].id, rows[b].length, 1, false);
          const auto vb = row_values(rows[b].id, rows[b].length, 1, true);
          k.insert(k.end(), kb.begin(), kb.end());
          v.insert(v.end(), vb.begin(), vb.end());
        }
        const auto B = static_cast<int64_t>(rows.size());
        auto [keys, values] = cache.update_and_fetch(Tensor::from_vector(k, {B, kHeads, 1, kDim}),
                                                     Tensor::from_vector(v, {B, kHeads, 1, kDim}));
        for (auto& r : rows) ++r.length;
        ASSERT_EQ(keys.shape(), (Shape{B, kHeads, cache.offset(), kDim})) << what;
        // The fetched keys hold each row's at its padded positions.
        const auto kv = keys.contiguous().to_float_vector();
        const auto pad = cache.left_padding();
        for (int64_t b = 0; b < B; ++b) {
          const auto want = row_values(rows[static_cast<size_t>(b)].id, 0, rows[static_cast<size_t>(b)].length, false);
          for (int64_t h = 0; h < kHeads; ++h)
            for (int64_t p = pad[static_cast<size_t>(b)]; p < cache.offset(); ++p)
              for (int64_t d = 0; d < kDim; ++d) {
                const int64_t q = p - pad[static_cast<size_t>(b)];
                ASSERT_EQ(kv[static_cast<size_t>(((b * kHeads + h) * cache.offset() + p) * kDim + d)],
                          want[static_cast<size_t>((h * rows[static_cast<size_t>(b)].length + q) * kDim + d)])
                    << what << " row " << b << " position " << p;
              }
        }
        what += " step";
      }
      expect_rows(cache, rows, what);
      if (HasFatalFailure()) return;
    }
  }
}

}  // namespace
}  // namespace lmx
