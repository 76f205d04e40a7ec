// A radix tree over fixed-size token blocks: the path from the root to a node spells a
// token prefix whose length is a whole number of blocks, and each node holds the arrays
// of its own block (the keys and values of those positions, one pair per layer). Nodes
// are reference-counted while a sequence uses them (a referenced node is never
// evicted) and the least recently used unreferenced leaf goes first when room is needed.
//
// Not thread-safe: one thread (the scheduler's worker) uses a tree.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <utility>
#include <vector>

#include "lmx/core/tensor.h"

namespace lmx::generate {

class PrefixBlockTree {
 public:
  struct Node {
    std::vector<int32_t> block;  // this node's tokens (block_tokens of them; fewer: a partial tail)
    std::vector<Tensor> arrays;  // per layer: keys, values [1, kv_heads, block_tokens, head_dim]
    size_t bytes = 0;            // what `arrays` hold
    Node* parent = nullptr;      // null for the root's children
    std::map<std::vector<int32_t>, std::unique_ptr<Node>> children;
    uint64_t last_used = 0;  // the tree's clock when a lookup last passed here
    size_t refs = 0;         // sequences using this node
  };

  explicit PrefixBlockTree(size_t block_tokens);
  size_t block_tokens() const { return block_tokens_; }

  // The chain of nodes spelling the longest prefix of `tokens` made of whole blocks
  // (at most max_blocks), root side first; every node on it counts as used now.
  std::vector<Node*> match(std::span<const int32_t> tokens, size_t max_blocks);
  // The child of `parent` (null: the root) holding `block`, or null.
  Node* child(Node* parent, std::span<const int32_t> block);
  // The child of `parent` (null: the root) whose block (or partial tail) starts with the
  // longest run of `tokens` (fewer than block_tokens of them), and that run's length;
  // {null, 0} when no child starts with tokens[0]. The child counts as used now.
  std::pair<Node*, size_t> partial(Node* parent, std::span<const int32_t> tokens);
  // Adds a child holding `block` under `parent` (null: the root), which must not have one.
  Node* add(Node* parent, std::span<const int32_t> block, std::vector<Tensor> arrays, size_t bytes);
  // Adds a partial tail: a child holding fewer than block_tokens tokens (the end of a
  // stored sequence), found only by partial() and never a parent; null when `parent`
  // already has a child of exactly these tokens.
  Node* add_tail(Node* parent, std::span<const int32_t> tokens, std::vector<Tensor> arrays, size_t bytes);
  void retain(Node* node);
  void release(Node* node);
  // Removes the least recently used leaf that no sequence references and returns its
  // bytes; nullopt when every leaf is referenced (or the tree is empty).
  std::optional<size_t> evict_one();

  size_t bytes() const { return bytes_; }
  size_t blocks() const { return blocks_; }

 private:
  // Leaves with no references, by (last_used, node): the eviction order.
  using Evictable = std::set<std::pair<uint64_t, Node*>>;
  void update_evictable(Node* node);
  // Adds a child of `parent` holding `tokens` (the callers check them).
  Node* insert(Node* parent, std::span<const int32_t> tokens, std::vector<Tensor> arrays, size_t bytes);
  std::map<std::vector<int32_t>, std::unique_ptr<Node>>& children_of(Node* parent);

  size_t block_tokens_;
  std::map<std::vector<int32_t>, std::unique_ptr<Node>> roots_;
  Evictable evictable_;
  uint64_t clock_ = 0;
  size_t bytes_ = 0, blocks_ = 0;
};

// The nodes one sequence uses (a chain from the root), retained until the lease ends.
class PrefixLease {
 public:
  PrefixLease() = default;
  ~PrefixLease() { reset(); }
  PrefixLease(PrefixLease&& other) noexcept { *this = std::move(other); }
  PrefixLease& operator=(PrefixLease&& other) noexcept;
  PrefixLease(const PrefixLease&) = delete;
  PrefixLease& operator=(const PrefixLease&) = delete;

  // Retains `node` (the chain's next node) until reset().
  void hold(PrefixBlockTree& tree, PrefixBlockTree::Node* node);
  void reset();
  const std::vector<PrefixBlockTree::Node*>& nodes() const { return nodes_; }

 private:
  PrefixBlockTree* tree_ = nullptr;
  std::vector<PrefixBlockTree::Node*> nodes_;
};

}  // namespace lmx::generate
