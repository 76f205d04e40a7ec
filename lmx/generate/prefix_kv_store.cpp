#include "lmx/generate/prefix_kv_store.h"

#include <algorithm>
#include <typeinfo>

#include "lmx/core/ops/shape.h"
#include "lmx/generate/simple_kv_cache.h"

namespace lmx::generate {

PrefixKVStore::PrefixKVStore(size_t budget_bytes, size_t block_tokens, bool partial_blocks)
    : budget_(budget_bytes), tree_(block_tokens), partial_blocks_(partial_blocks) {}

bool PrefixKVStore::reusable(const models::LanguageModel& model, const nn::KVCacheList& caches) {
  if (model.positions_depend_on_length()) return false;
  for (const auto& c : caches) {
    if (!c) return false;
    // Exactly the plain cache: its subclasses and the other kinds keep other state.
    const nn::KVCache& cache = *c;
    if (typeid(cache) != typeid(SimpleKVCache) || cache.offset() != 0) return false;
  }
  return !caches.empty();
}

int64_t PrefixKVStore::seed(std::span<const int32_t> tokens,
                            nn::KVCacheList& caches,
                            PrefixLease& lease,
                            int64_t step) {
  ++lookups_;
  const size_t bt = tree_.block_tokens();
  const std::vector<PrefixBlockTree::Node*> chain = tree_.match(tokens, tokens.size() / bt);
  // The next block's shared start (fewer than bt tokens: a whole one would be on the chain).
  std::pair<PrefixBlockTree::Node*, size_t> part{nullptr, 0};
  if (partial_blocks_) {
    const size_t whole = chain.size() * bt;
    part = tree_.partial(chain.empty() ? nullptr : chain.back(),
                         tokens.subspan(whole, std::min(bt - 1, tokens.size() - whole)));
  }
  if (chain.empty() && !part.first) return 0;
  for (auto* node : chain) lease.hold(tree_, node);
  for (size_t layer = 0; layer < caches.size(); ++layer) {
    std::vector<Tensor> keys, values;
    for (const auto* node : chain) {
      keys.push_back(node->arrays[2 * layer]);
      values.push_back(node->arrays[2 * layer + 1]);
    }
    if (part.first) {
      const auto run = static_cast<int64_t>(part.second);
      keys.push_back(part.first->arrays[2 * layer].slice(2, 0, run));
      values.push_back(part.first->arrays[2 * layer + 1].slice(2, 0, run));
    }
    // The cache copies what it is given (the partly used block need not be held).
    caches[layer] = std::make_unique<SimpleKVCache>(ops::concat(keys, 2), ops::concat(values, 2), step);
  }
  const int64_t reused = static_cast<int64_t>(chain.size() * bt + part.second);
  ++hits_;
  reused_tokens_ += static_cast<uint64_t>(reused);
  return reused;
}

void PrefixKVStore::store(std::span<const int32_t> tokens,
                          const std::vector<std::vector<Tensor>>& layers,
                          PrefixLease& lease) {
  const size_t bt = tree_.block_tokens();
  size_t length = layers.empty() ? 0 : tokens.size();
  for (const auto& kv : layers)
    length = std::min(length, kv.empty() ? 0 : static_cast<size_t>(kv[0].dim(2)));
  const size_t blocks = length / bt;
  // Positions [first, last) of every layer's keys and values, copied (a view would keep
  // the whole buffer), once there is room for them: false when there is none.
  std::vector<Tensor> arrays;
  size_t bytes = 0;
  auto take = [&](size_t first, size_t last) {
    bytes = 0;
    for (const auto& state : layers)
      for (const Tensor& t : state)
        bytes += t.slice(2, static_cast<int64_t>(first), static_cast<int64_t>(last)).nbytes();
    while (tree_.bytes() + bytes > budget_) {
      if (!tree_.evict_one()) return false;
      ++evictions_;
    }
    arrays.clear();
    for (const auto& state : layers)
      for (const Tensor& t : state)
        arrays.push_back(t.slice(2, static_cast<int64_t>(first), static_cast<int64_t>(last)).clone());
    return true;
  };
  PrefixBlockTree::Node* at = lease.nodes().empty() ? nullptr : lease.nodes().back();
  size_t b = lease.nodes().size();
  for (; b < blocks; ++b) {
    const std::span<const int32_t> block = tokens.subspan(b * bt, bt);
    PrefixBlockTree::Node* next = tree_.child(at, block);
    if (!next) {
      if (!take(b * bt, (b + 1) * bt)) break;
      next = tree_.add(at, block, std::move(arrays), bytes);
    }
    lease.hold(tree_, next);
    at = next;
  }
  // With partial blocks, the rest after the whole blocks as a partial tail (not held: a
  // sequence seeding from it copies what it uses), so that the next request resending
  // this text finds all of it.
  if (partial_blocks_ && b == blocks && length > blocks * bt) {
    const std::span<const int32_t> tail = tokens.subspan(blocks * bt, length - blocks * bt);
    if (!tree_.child(at, tail) && take(blocks * bt, length)) tree_.add_tail(at, tail, std::move(arrays), bytes);
  }
  bytes_.store(tree_.bytes());
  blocks_.store(tree_.blocks());
}

PrefixCacheStats PrefixKVStore::stats() const {
  PrefixCacheStats s;
  s.lookups = lookups_.load();
  s.hits = hits_.load();
  s.reused_tokens = reused_tokens_.load();
  s.evictions = evictions_.load();
  s.bytes = bytes_.load();
  s.blocks = blocks_.load();
  return s;
}

}  // namespace lmx::generate
