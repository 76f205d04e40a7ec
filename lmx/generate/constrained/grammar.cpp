#include "lmx/generate/constrained/grammar.h"

#include <algorithm>

namespace lmx::generate::constrained {

uint32_t Grammar::literal(std::vector<std::string> texts) {
  std::sort(texts.begin(), texts.end());
  texts.erase(std::unique(texts.begin(), texts.end()), texts.end());
  Node n;
  n.kind = NodeKind::kLiteral;
  n.literals = std::move(texts);
  return add(std::move(n));
}

uint32_t Grammar::any_value() {
  if (any_ != kUnbounded) return any_;
  any_ = add(Node(NodeKind::kAnyOf));
  Node str(NodeKind::kString);
  const uint32_t key = add(str);
  const uint32_t object = add(Node(NodeKind::kMap, any_));
  nodes[object].children = {key};  // kMap: children[0] is the key node
  const uint32_t array = add(Node(NodeKind::kArray, any_));
  const uint32_t string = add(str);
  const uint32_t number = add(Node(NodeKind::kNumber));
  const uint32_t words = literal({"true", "false", "null"});
  nodes[any_].children = {object, array, string, number, words};
  return any_;
}

bool Grammar::prune_unfinishable() {
  // Least fixpoint of "has a finite value".
  std::vector<char> ok(nodes.size(), 0);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (ok[i]) continue;
      const Node& n = nodes[i];
      bool v = false;
      switch (n.kind) {
        case NodeKind::kLiteral:
          v = !n.literals.empty();
          break;
        case NodeKind::kString:
          v = n.min <= n.max;
          break;
        case NodeKind::kNumber:
        case NodeKind::kMap:
          v = true;
          break;
        case NodeKind::kArray:
          v = n.min <= n.max && (n.min == 0 || ok[n.child]);
          break;
        case NodeKind::kObject:
          v = std::all_of(n.properties.begin(), n.properties.end(),
                          [&](const Property& p) { return !p.required || ok[p.value]; });
          break;
        case NodeKind::kAnyOf:
          v = std::any_of(n.children.begin(), n.children.end(), [&](uint32_t c) { return ok[c]; });
          break;
        case NodeKind::kSequence:
          v = std::all_of(n.children.begin(), n.children.end(), [&](uint32_t c) { return ok[c]; });
          break;
      }
      if (v) ok[i] = 1, changed = true;
    }
  }
  for (Node& n : nodes) {
    if (n.kind == NodeKind::kAnyOf) {
      std::erase_if(n.children, [&](uint32_t c) { return !ok[c]; });
    } else if (n.kind == NodeKind::kObject) {
      std::erase_if(n.properties, [&](const Property& p) { return !p.required && !ok[p.value]; });
    } else if (n.kind == NodeKind::kArray && !ok[n.child]) {
      n.max = 0;
    }
  }
  return ok[root];
}

}  // namespace lmx::generate::constrained
