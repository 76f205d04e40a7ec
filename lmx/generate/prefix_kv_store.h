// The prefix cache the batch scheduler shares across requests: the keys and values of
// prompts already prefilled, kept in a PrefixBlockTree of token blocks under a byte
// budget. A sequence about to be prefilled takes the longest cached run of whole
// blocks of its prompt (seed) and, with partial blocks on, the first positions of a
// cached block (or partial tail: what a stored sequence held past its whole blocks)
// after them that starts as its prompt goes on; it prefills only the rest, then adds its
// own blocks (store); the blocks it uses stay referenced, so never evicted, until its
// lease ends (a partly used block or tail is copied, not held).
//
// Reuse is exact (the cached keys are those a prefill of the same tokens computes, up
// to the float rounding of another chunking) only for plain per-layer KV caches whose
// keys depend on the tokens and positions alone: reusable() says no for recurrent
// state layers, for quantized or rotating caches and for models whose positional
// encoding depends on the pass length (dynamic / longrope RoPE).
//
// seed() and store() run on one thread (the scheduler's worker); stats() on any.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "lmx/generate/prefix_block_tree.h"
#include "lmx/models/language_model.h"

namespace lmx::generate {

struct PrefixCacheStats {
  uint64_t lookups = 0;        // sequences that looked for a cached prefix
  uint64_t hits = 0;           // ... and reused at least one block
  uint64_t reused_tokens = 0;  // prompt tokens whose keys and values came from the cache
  uint64_t evictions = 0;      // blocks evicted to make room
  size_t bytes = 0;            // held now
  size_t blocks = 0;           // held now
};

class PrefixKVStore {
 public:
  // 16 tokens a block: a hit loses at most 15 tokens to the block boundary, while a
  // node's bookkeeping stays small beside its arrays (16 positions of every layer's
  // keys and values).
  static constexpr size_t kDefaultBlockTokens = 16;

  // partial_blocks: seed() also takes the start of a block (a repeated prompt then runs
  // its last token only, not up to block_tokens of them: its first token comes after one
  // decode-sized pass). What is reused then depends on what earlier sequences stored
  // past their prompts (their replies' blocks), i.e. on timing when they run at once.
  explicit PrefixKVStore(size_t budget_bytes, size_t block_tokens = kDefaultBlockTokens,
                         bool partial_blocks = false);
  size_t block_tokens() const { return tree_.block_tokens(); }
  size_t budget_bytes() const { return budget_; }

  // Whether the fresh caches of a sequence of `model` (one per layer) can be seeded
  // and stored.
  static bool reusable(const models::LanguageModel& model, const nn::KVCacheList& caches);
  // Replaces the empty caches by plain caches holding the longest cached run of whole
  // blocks of `tokens` (and with partial blocks the shared start of the next block);
  // returns its length in tokens. `lease` holds its whole blocks. The caches grow in
  // steps of `step` positions (SimpleKVCache).
  int64_t seed(std::span<const int32_t> tokens, nn::KVCacheList& caches, PrefixLease& lease, int64_t step = 256);
  // Adds the whole blocks of `tokens` that are not cached yet (with partial blocks also
  // the rest as a partial tail), evicting unreferenced blocks to stay within the budget
  // (it stops at the first block that does not fit);
  // `lease`, from seed() (and earlier store() calls with a shorter `tokens`), comes to
  // hold the whole stored chain. `layers[i]`: layer i's keys and values of `tokens` at
  // positions 0, 1, ... ([1, kv_heads, >= tokens, head_dim], a cache's state()).
  void store(std::span<const int32_t> tokens, const std::vector<std::vector<Tensor>>& layers, PrefixLease& lease);

  PrefixCacheStats stats() const;

 private:
  size_t budget_;
  PrefixBlockTree tree_;
  bool partial_blocks_;
  std::atomic<uint64_t> lookups_{0}, hits_{0}, reused_tokens_{0}, evictions_{0};
  std::atomic<size_t> bytes_{0}, blocks_{0};  // the tree's, mirrored for stats()
};

}  // namespace lmx::generate
