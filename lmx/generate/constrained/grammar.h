// The grammar constrained decoding follows (internal): a graph of JSON value shapes over
// bytes, compiled from a JSON schema (json_schema_compiler.h) and walked by the byte
// matcher (grammar_matcher.h). Nodes refer to each other by index, so a recursive schema
// ($ref) is a cycle in the graph, not an unbounded tree.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace lmx::generate::constrained {

enum class NodeKind : uint8_t {
  kLiteral,   // one of `literals` exactly (enum, const, true/false/null, property keys)
  kString,    // a JSON string of min..max characters
  kNumber,    // a JSON number (`integer`: no fraction, no exponent)
  kObject,    // `properties` in their declared order, optional ones may be left out
  kMap,       // any keys (node children[0], a string) with values of node `child`
  kArray,     // min..max items of node `child`
  kAnyOf,     // one of `children`
  kSequence,  // every node of `children`, one after the other, nothing between
};

inline constexpr uint32_t kUnbounded = std::numeric_limits<uint32_t>::max();

struct Property {
  uint32_t key = 0;    // a kLiteral node: the quoted name
  uint32_t value = 0;  // the value's node
  bool required = false;
};

struct Node {
  Node() = default;
  explicit Node(NodeKind k, uint32_t child_node = 0) : kind(k), child(child_node) {}
  static Node number(bool integer_only) {
    Node n(NodeKind::kNumber);
    n.integer = integer_only;
    return n;
  }

  NodeKind kind = NodeKind::kLiteral;
  std::vector<std::string> literals;  // kLiteral: sorted, distinct, non-empty
  uint32_t min = 0;                   // kString: characters; kArray: items
  uint32_t max = kUnbounded;
  bool integer = false;               // kNumber
  std::vector<Property> properties;   // kObject
  uint32_t child = 0;                 // kArray items, kMap values
  std::vector<uint32_t> children;     // kAnyOf alternatives, kSequence parts
};

struct Grammar {
  std::vector<Node> nodes;
  uint32_t root = 0;
  // Node builders, each returning the new node's index.
  uint32_t add(Node node) {
    nodes.push_back(std::move(node));
    return static_cast<uint32_t>(nodes.size() - 1);
  }
  uint32_t literal(std::vector<std::string> texts);
  // Any JSON value, built once per grammar (objects and arrays of it nest).
  uint32_t any_value();
  // Drops what can never finish (an anyOf branch, an optional property or array items
  // whose schema recurses with no way out); false when the root itself cannot finish.
  bool prune_unfinishable();

 private:
  uint32_t any_ = kUnbounded;
};

// Limits that keep a hostile schema from costing unbounded time or memory.
inline constexpr size_t kMaxNodes = 20000;
inline constexpr size_t kMaxLiteralsPerNode = 1024;  // enum values
inline constexpr size_t kMaxLiteralBytes = 1 << 20;  // all literals together
inline constexpr int kMaxSchemaDepth = 64;           // nesting of the schema document
inline constexpr size_t kMaxMatchDepth = 128;        // frames of the matcher's stack
inline constexpr uint32_t kMaxIntegerDigits = 15;
inline constexpr uint32_t kMaxFractionDigits = 15;
inline constexpr uint32_t kMaxExponentDigits = 3;

}  // namespace lmx::generate::constrained
