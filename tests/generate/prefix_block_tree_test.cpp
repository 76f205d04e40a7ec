// The token-block radix tree of the prefix cache: longest whole-block matches, LRU order
// of evicting unreferenced leaves, and that referenced nodes (and so their ancestors)
// are never evicted, on random trees against a brute-force account.
#include "lmx/generate/prefix_block_tree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "lmx/base/error.h"

namespace lmx {
namespace {

using generate::PrefixBlockTree;
using generate::PrefixLease;
using Node = PrefixBlockTree::Node;

// Adds every missing whole block of `tokens`; returns the chain.
std::vector<Node*> add_chain(PrefixBlockTree& tree,
                             const std::vector<int32_t>& tokens,
                             size_t bytes_per_block = 10) {
  std::vector<Node*> chain;
  Node* at = nullptr;
  const size_t bt = tree.block_tokens();
  for (size_t b = 0; (b + 1) * bt <= tokens.size(); ++b) {
    std::span<const int32_t> block(tokens.data() + b * bt, bt);
    Node* next = tree.child(at, block);
    if (!next) next = tree.add(at, block, {}, bytes_per_block);
    chain.push_back(next);
    at = next;
  }
  return chain;
}

TEST(PrefixBlockTree, MatchesTheLongestRunOfWholeBlocks) {
  PrefixBlockTree tree(4);
  add_chain(tree, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  add_chain(tree, {1, 2, 3, 4, 5, 6, 7, 9});  // branches at the second block
  EXPECT_EQ(tree.blocks(), 4u);
  EXPECT_EQ(tree.bytes(), 40u);
  EXPECT_EQ(tree.match(std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, 10).size(),
            3u);
  EXPECT_EQ(tree.match(std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 10).size(),
            2u);  // a partial block
  EXPECT_EQ(tree.match(std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 9}, 10).size(), 2u);
  EXPECT_EQ(tree.match(std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 0}, 10).size(), 1u);
  EXPECT_EQ(tree.match(std::vector<int32_t>{0, 2, 3, 4, 5, 6, 7, 8}, 10).size(), 0u);
  EXPECT_EQ(tree.match(std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 1).size(),
            1u);  // capped
  auto chain = tree.match(std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8}, 10);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[1]->parent, chain[0]);
  EXPECT_EQ(chain[1]->block, (std::vector<int32_t>{5, 6, 7, 8}));
  EXPECT_THROW(tree.add(nullptr, std::vector<int32_t>{1, 2, 3, 4}, {}, 1),
               InvalidArgument);  // already there
  EXPECT_THROW(tree.add(nullptr, std::vector<int32_t>{1, 2, 3}, {}, 1),
               InvalidArgument);  // not a block
}

// partial(): among a node's children, the block starting with the longest run of the
// given tokens, against a scan of every child, on random trees of a small alphabet
// (many shared starts).
TEST(PrefixBlockTree, PartialFindsTheChildSharingTheLongestStart) {
  std::mt19937 rng(3);
  for (int round = 0; round < 50; ++round) {
    PrefixBlockTree tree(5);
    std::uniform_int_distribution<int32_t> tok(0, 2);
    std::vector<int32_t> stem = {7, 7, 7, 7, 7};  // a parent block for half the queries
    add_chain(tree, stem);
    Node* parent = tree.child(nullptr, stem);
    for (int i = 0; i < 12; ++i) {
      std::vector<int32_t> block(5);
      for (auto& t : block) t = tok(rng);
      for (Node* at : {static_cast<Node*>(nullptr), parent})
        if (!tree.child(at, block)) tree.add(at, block, {}, 1);
    }
    for (int q = 0; q < 20; ++q) {
      std::vector<int32_t> query(std::uniform_int_distribution<size_t>(0, 4)(rng));
      for (auto& t : query) t = tok(rng);
      Node* at = q % 2 ? parent : nullptr;
      // The same random blocks hang under the root and under the stem (the stem itself,
      // of 7s, starts no query).
      size_t want = 0;
      for (const auto& [block, node] : parent->children) {
        size_t k = 0;
        while (k < query.size() && block[k] == query[k]) ++k;
        want = std::max(want, k);
      }
      const auto [node, run] = tree.partial(at, query);
      EXPECT_EQ(run, want) << "round " << round << " query " << q;
      if (run > 0) {
        ASSERT_NE(node, nullptr);
        EXPECT_TRUE(std::equal(query.begin(), query.begin() + static_cast<std::ptrdiff_t>(run), node->block.begin()));
        EXPECT_EQ(node->parent, at);
      } else {
        EXPECT_EQ(node, nullptr);
      }
    }
  }
}

// Partial tails: found by partial() (as far as they reach), never by match(), evictable
// leaves; a tail of a whole block's size or an empty one is refused, a repeated one not added.
TEST(PrefixBlockTree, PartialTailsAreFoundByPartialOnly) {
  PrefixBlockTree tree(4);
  auto chain = add_chain(tree, {1, 2, 3, 4});
  ASSERT_NE(tree.add_tail(chain[0], std::vector<int32_t>{5, 6}, {}, 3), nullptr);
  EXPECT_EQ(tree.add_tail(chain[0], std::vector<int32_t>{5, 6}, {}, 3), nullptr);  // already there
  EXPECT_THROW(tree.add_tail(chain[0], std::vector<int32_t>{5, 6, 7, 8}, {}, 3), InvalidArgument);
  EXPECT_THROW(tree.add_tail(chain[0], std::vector<int32_t>{}, {}, 3), InvalidArgument);
  EXPECT_EQ(tree.blocks(), 2u);
  EXPECT_EQ(tree.bytes(), 13u);
  EXPECT_EQ(tree.match(std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8}, 10).size(), 1u);
  const auto [node, run] = tree.partial(chain[0], std::vector<int32_t>{5, 6, 7});
  EXPECT_EQ(run, 2u);  // the tail holds 2 tokens
  ASSERT_NE(node, nullptr);
  EXPECT_EQ(node->block, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(tree.partial(chain[0], std::vector<int32_t>{5}).second, 1u);
  EXPECT_EQ(tree.partial(chain[0], std::vector<int32_t>{6}).second, 0u);
  ASSERT_TRUE(tree.evict_one().has_value());  // the tail, the only leaf
  EXPECT_EQ(tree.partial(chain[0], std::vector<int32_t>{5, 6, 7}).second, 0u);
  EXPECT_EQ(tree.blocks(), 1u);
}

TEST(PrefixBlockTree, EvictsTheLeastRecentlyUsedLeafFirst) {
  PrefixBlockTree tree(2);
  add_chain(tree, {1, 1, 2, 2});                    // a -> b
  add_chain(tree, {3, 3});                          // c
  add_chain(tree, {4, 4, 5, 5});                    // d -> e
  tree.match(std::vector<int32_t>{1, 1, 2, 2}, 2);  // a, b are now the newest
  std::vector<std::vector<int32_t>> gone;
  while (tree.blocks() > 0) {
    // Record which first blocks still match, to see what each eviction took.
    const size_t before = tree.blocks();
    ASSERT_TRUE(tree.evict_one().has_value());
    EXPECT_EQ(tree.blocks(), before - 1);
    std::vector<int32_t> left;
    for (int32_t t : {1, 3, 4})
      left.push_back(
          static_cast<int32_t>(tree.child(nullptr, std::vector<int32_t>{t, t}) != nullptr));
    gone.push_back(left);
  }
  // c (oldest leaf), then e, then d (a leaf once e went), then b, then a.
  EXPECT_EQ(gone, (std::vector<std::vector<int32_t>>{
                      {1, 0, 1}, {1, 0, 1}, {1, 0, 0}, {1, 0, 0}, {0, 0, 0}}));
  EXPECT_EQ(tree.bytes(), 0u);
  EXPECT_FALSE(tree.evict_one().has_value());
}

// Random chains, random leases; evicting everything possible leaves exactly the held
// nodes and their ancestors, each still found by a lookup, and releasing them lets
// the tree empty.
TEST(PrefixBlockTree, NeverEvictsReferencedNodes) {
  std::mt19937 rng(21);
  for (int round = 0; round < 20; ++round) {
    PrefixBlockTree tree(3);
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < 30; ++i) {
      std::vector<int32_t> p(static_cast<size_t>(std::uniform_int_distribution<int>(3, 15)(rng)));
      for (auto& t : p)
        t = std::uniform_int_distribution<int32_t>(0, 2)(rng);  // few symbols: shared prefixes
      prompts.push_back(p);
      add_chain(tree, p);
    }
    std::vector<PrefixLease> leases(8);
    std::set<Node*> pinned;
    for (auto& lease : leases) {
      const auto& p = prompts[std::uniform_int_distribution<size_t>(0, prompts.size() - 1)(rng)];
      const auto chain = tree.match(p, std::uniform_int_distribution<size_t>(1, 5)(rng));
      for (Node* n : chain) {
        lease.hold(tree, n);
        pinned.insert(n);
      }
    }
    size_t evicted = 0;
    while (tree.evict_one()) ++evicted;
    EXPECT_EQ(tree.blocks(), pinned.size()) << "round " << round;
    EXPECT_EQ(tree.bytes(), 10 * pinned.size());
    for (auto& lease : leases) {
      // The held chain is still whole: a lookup of its blocks walks it node by node.
      std::vector<int32_t> tokens;
      for (Node* n : lease.nodes()) tokens.insert(tokens.end(), n->block.begin(), n->block.end());
      EXPECT_EQ(tree.match(tokens, 100), lease.nodes());
    }
    for (auto& lease : leases) lease.reset();
    while (tree.evict_one()) ++evicted;
    EXPECT_EQ(tree.blocks(), 0u);
    EXPECT_GT(evicted, pinned.size());
  }
}

}  // namespace
}  // namespace lmx
