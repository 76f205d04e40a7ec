#include "lmx/generate/prefix_block_tree.h"

#include "lmx/base/error.h"

#include <iterator>

namespace lmx::generate {

PrefixBlockTree::PrefixBlockTree(size_t block_tokens) : block_tokens_(block_tokens) {
  if (block_tokens == 0) throw InvalidArgument("PrefixBlockTree: block_tokens must be >= 1");
}

std::map<std::vector<int32_t>, std::unique_ptr<PrefixBlockTree::Node>>&
PrefixBlockTree::children_of(Node* parent) {
  return parent ? parent->children : roots_;
}

void PrefixBlockTree::update_evictable(Node* node) {
  // Callers erase the node's old entry first when they change last_used.
  if (node->refs == 0 && node->children.empty()) {
    evictable_.insert({node->last_used, node});
  } else {
    evictable_.erase({node->last_used, node});
  }
}

PrefixBlockTree::Node* PrefixBlockTree::child(Node* parent, std::span<const int32_t> block) {
  auto& children = children_of(parent);
  auto it = children.find(std::vector<int32_t>(block.begin(), block.end()));
  return it == children.end() ? nullptr : it->second.get();
}

std::pair<PrefixBlockTree::Node*, size_t> PrefixBlockTree::partial(Node* parent, std::span<const int32_t> tokens) {
  LMX_ASSERT(tokens.size() < block_tokens_);
  auto& children = children_of(parent);
  if (tokens.empty() || children.empty()) return {nullptr, 0};
  // In the children's (lexicographic) order, the block sharing the longest run with
  // `tokens` is next to where `tokens` would go: the first at or after it, or the one before.
  const std::vector<int32_t> key(tokens.begin(), tokens.end());
  auto shared = [&](const std::vector<int32_t>& block) {
    size_t k = 0;
    while (k < key.size() && k < block.size() && block[k] == key[k]) ++k;
    return k;
  };
  Node* best = nullptr;
  size_t best_run = 0;
  const auto at = children.lower_bound(key);
  for (auto it : {at, at == children.begin() ? children.end() : std::prev(at)}) {
    if (it == children.end()) continue;
    const size_t run = shared(it->first);
    if (run > best_run) {
      best = it->second.get();
      best_run = run;
    }
  }
  if (!best) return {nullptr, 0};
  evictable_.erase({best->last_used, best});
  best->last_used = ++clock_;
  update_evictable(best);
  return {best, best_run};
}

std::vector<PrefixBlockTree::Node*> PrefixBlockTree::match(std::span<const int32_t> tokens,
                                                           size_t max_blocks) {
  std::vector<Node*> chain;
  const uint64_t now = ++clock_;
  Node* at = nullptr;
  for (size_t b = 0; b < max_blocks && (b + 1) * block_tokens_ <= tokens.size(); ++b) {
    Node* next = child(at, tokens.subspan(b * block_tokens_, block_tokens_));
    if (!next) break;
    evictable_.erase({next->last_used, next});
    next->last_used = now;
    update_evictable(next);
    chain.push_back(next);
    at = next;
  }
  return chain;
}

PrefixBlockTree::Node* PrefixBlockTree::add(Node* parent,
                                            std::span<const int32_t> block,
                                            std::vector<Tensor> arrays,
                                            size_t bytes) {
  if (block.size() != block_tokens_)
    throw InvalidArgument("PrefixBlockTree::add: a block of " + std::to_string(block.size()) +
                          " tokens, not " + std::to_string(block_tokens_));
  if (children_of(parent).count(std::vector<int32_t>(block.begin(), block.end())))
    throw InvalidArgument("PrefixBlockTree::add: the block is already there");
  return insert(parent, block, std::move(arrays), bytes);
}

PrefixBlockTree::Node* PrefixBlockTree::insert(Node* parent,
                                               std::span<const int32_t> tokens,
                                               std::vector<Tensor> arrays,
                                               size_t bytes) {
  auto& children = children_of(parent);
  std::vector<int32_t> key(tokens.begin(), tokens.end());
  auto node = std::make_unique<Node>();
  node->block = key;
  node->arrays = std::move(arrays);
  node->bytes = bytes;
  node->parent = parent;
  node->last_used = ++clock_;
  Node* raw = node.get();
  children.emplace(std::move(key), std::move(node));
  bytes_ += bytes;
  ++blocks_;
  if (parent) update_evictable(parent);  // no longer a leaf
  update_evictable(raw);
  return raw;
}

PrefixBlockTree::Node* PrefixBlockTree::add_tail(Node* parent,
                                                 std::span<const int32_t> tokens,
                                                 std::vector<Tensor> arrays,
                                                 size_t bytes) {
  if (tokens.empty() || tokens.size() >= block_tokens_)
    throw InvalidArgument("PrefixBlockTree::add_tail: a tail of " + std::to_string(tokens.size()) +
                          " tokens, not 1 .. " + std::to_string(block_tokens_ - 1));
  if (children_of(parent).count(std::vector<int32_t>(tokens.begin(), tokens.end()))) return nullptr;
  return insert(parent, tokens, std::move(arrays), bytes);
}

void PrefixBlockTree::retain(Node* node) {
  ++node->refs;
  update_evictable(node);
}

void PrefixBlockTree::release(Node* node) {
  LMX_ASSERT(node->refs > 0);
  --node->refs;
  update_evictable(node);
}

std::optional<size_t> PrefixBlockTree::evict_one() {
  if (evictable_.empty()) return std::nullopt;
  Node* victim = evictable_.begin()->second;
  evictable_.erase(evictable_.begin());
  LMX_ASSERT(victim->refs == 0 && victim->children.empty());
  Node* parent = victim->parent;
  const size_t freed = victim->bytes;
  bytes_ -= freed;
  --blocks_;
  children_of(parent).erase(victim->block);  // frees the victim
  if (parent) update_evictable(parent);      // may have become a leaf
  return freed;
}

PrefixLease& PrefixLease::operator=(PrefixLease&& other) noexcept {
  if (this != &other) {
    reset();
    tree_ = other.tree_;
    nodes_ = std::move(other.nodes_);
    other.nodes_.clear();
    other.tree_ = nullptr;
  }
  return *this;
}

void PrefixLease::hold(PrefixBlockTree& tree, PrefixBlockTree::Node* node) {
  LMX_ASSERT(!tree_ || tree_ == &tree);
  tree_ = &tree;
  tree.retain(node);
  nodes_.push_back(node);
}

void PrefixLease::reset() {
  if (tree_)
    for (auto* n : nodes_) tree_->release(n);
  nodes_.clear();
  tree_ = nullptr;
}

}  // namespace lmx::generate
