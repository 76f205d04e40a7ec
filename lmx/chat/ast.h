// Syntax tree of a parsed template (internal to lmx/chat).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lmx/chat/value.h"

namespace lmx::chat {
// Dispatch indices of built-in filters and tests (-1: unknown), resolved at parse time.
int filter_id(std::string_view name);
int test_id(std::string_view name);
}  // namespace lmx::chat

namespace lmx::chat::detail {

enum class NodeKind : uint8_t {
  // expressions
  Literal,
  Name,
  ListLit,
  TupleLit,
  DictLit,
  Unary,   // op: '-', '+', 'n' (not)
  Binary,  // op: + - * / F(//) % P(**) ~ a(and) o(or) i(in) I(not in)
  Compare,
  CondExpr,
  GetAttr,
  GetItem,
  Slice,
  Call,
  Filter,
  Test,
  // statements
  Text,
  Print,
  If,
  For,
  Set,
  SetBlock,
  Macro,
  CallBlock,
  FilterBlock,
  With,
  Break,
  Continue,
};

struct Node {
  NodeKind kind;
  int line = 0;
  explicit Node(NodeKind k, int l) : kind(k), line(l) {}
  virtual ~Node() = default;
};
using NodePtr = std::unique_ptr<Node>;
using NodeList = std::vector<NodePtr>;

struct LiteralNode : Node {
  Value value;
  LiteralNode(Value v, int l) : Node(NodeKind::Literal, l), value(std::move(v)) {}
};

// Built-in globals a name may fall back to when no variable has that name.
enum class Builtin : uint8_t { None, Range, Dict, Namespace, RaiseException, StrftimeNow, Joiner, Cycler, Lipsum };

struct NameNode : Node {
  std::string name;
  int slot;  // index in the template's name table
  Builtin builtin = Builtin::None;
  NameNode(std::string n, int s, int l) : Node(NodeKind::Name, l), name(std::move(n)), slot(s) {}
};

struct SeqNode : Node {  // list or tuple literal
  NodeList items;
  SeqNode(NodeKind k, int l) : Node(k, l) {}
};

struct DictNode : Node {
  std::vector<std::pair<NodePtr, NodePtr>> items;
  explicit DictNode(int l) : Node(NodeKind::DictLit, l) {}
};

struct UnaryNode : Node {
  char op;
  NodePtr operand;
  UnaryNode(char o, NodePtr x, int l) : Node(NodeKind::Unary, l), op(o), operand(std::move(x)) {}
};

struct BinaryNode : Node {
  char op;
  NodePtr left, right;
  BinaryNode(char o, NodePtr a, NodePtr b, int l)
      : Node(NodeKind::Binary, l), op(o), left(std::move(a)), right(std::move(b)) {}
};

struct CompareNode : Node {
  NodePtr first;
  // op: '=' (==), '!' (!=), '<', 'l' (<=), '>', 'g' (>=), 'i' (in), 'I' (not in)
  std::vector<std::pair<char, NodePtr>> rest;
  explicit CompareNode(int l) : Node(NodeKind::Compare, l) {}
};

struct CondExprNode : Node {
  NodePtr test, then_expr, else_expr;  // else_expr may be null (undefined)
  explicit CondExprNode(int l) : Node(NodeKind::CondExpr, l) {}
};

struct GetAttrNode : Node {
  NodePtr object;
  std::string attr;
  Value attr_value;  // attr as a string Value, for dict lookups
  GetAttrNode(NodePtr o, std::string a, int l)
      : Node(NodeKind::GetAttr, l), object(std::move(o)), attr(std::move(a)), attr_value(Value::string(attr)) {}
};

struct GetItemNode : Node {
  NodePtr object, index;
  GetItemNode(NodePtr o, NodePtr i, int l) : Node(NodeKind::GetItem, l), object(std::move(o)), index(std::move(i)) {}
};

struct SliceNode : Node {
  NodePtr object, start, stop, step;  // any of start/stop/step may be null
  explicit SliceNode(int l) : Node(NodeKind::Slice, l) {}
};

struct ArgList {
  NodeList args;
  std::vector<std::pair<std::string, NodePtr>> kwargs;
  NodePtr star_args, star_kwargs;
};

struct CallNode : Node {
  NodePtr callee;
  ArgList args;
  explicit CallNode(int l) : Node(NodeKind::Call, l) {}
};

struct FilterNode : Node {
  NodePtr subject;  // null inside filter blocks / set blocks: the block's output
  std::string name;
  int id = -1;
  ArgList args;
  explicit FilterNode(int l) : Node(NodeKind::Filter, l) {}
};

struct TestNode : Node {
  NodePtr subject;
  std::string name;
  int id = -1;
  ArgList args;
  bool negated = false;
  explicit TestNode(int l) : Node(NodeKind::Test, l) {}
};

struct TextNode : Node {
  std::string text;
  TextNode(std::string t, int l) : Node(NodeKind::Text, l), text(std::move(t)) {}
};

struct PrintNode : Node {
  NodePtr expr;
  PrintNode(NodePtr e, int l) : Node(NodeKind::Print, l), expr(std::move(e)) {}
};

struct IfNode : Node {
  std::vector<std::pair<NodePtr, NodeList>> branches;
  NodeList else_body;
  explicit IfNode(int l) : Node(NodeKind::If, l) {}
};

// Assignment target: a name, a tuple of targets, or namespace.attr.
struct Target {
  enum class Kind : uint8_t { Name, Tuple, Attr } kind = Kind::Name;
  std::string name;  // Name: variable; Attr: the namespace variable
  int slot = -1;
  std::string attr;  // Attr only
  std::vector<Target> items;
};

struct ForNode : Node {
  Target target;
  NodePtr iter, filter;
  bool recursive = false;
  NodeList body, else_body;
  int loop_slot = -1;
  explicit ForNode(int l) : Node(NodeKind::For, l) {}
};

struct SetNode : Node {
  Target target;
  NodePtr value;
  explicit SetNode(int l) : Node(NodeKind::Set, l) {}
};

struct SetBlockNode : Node {
  Target target;
  NodePtr filter;  // FilterNode chain with null innermost subject, or null
  NodeList body;
  explicit SetBlockNode(int l) : Node(NodeKind::SetBlock, l) {}
};

struct MacroParam {
  std::string name;
  int slot;
  NodePtr default_value;  // may be null
};

struct MacroNode : Node {
  std::string name;
  int slot = -1;
  std::vector<MacroParam> params;
  NodeList body;
  int varargs_slot = -1, kwargs_slot = -1, caller_slot = -1;
  explicit MacroNode(int l) : Node(NodeKind::Macro, l) {}
};

struct CallBlockNode : Node {
  std::unique_ptr<CallNode> call;
  std::unique_ptr<MacroNode> caller;  // the block body as a macro named "caller"
  explicit CallBlockNode(int l) : Node(NodeKind::CallBlock, l) {}
};

struct FilterBlockNode : Node {
  NodePtr filter;  // FilterNode chain with null innermost subject
  NodeList body;
  explicit FilterBlockNode(int l) : Node(NodeKind::FilterBlock, l) {}
};

struct WithNode : Node {
  std::vector<std::pair<Target, NodePtr>> assignments;
  NodeList body;
  explicit WithNode(int l) : Node(NodeKind::With, l) {}
};

struct LoopControlNode : Node {
  explicit LoopControlNode(NodeKind k, int l) : Node(k, l) {}
};

// A parsed template: the body plus the table of variable names it mentions.
struct ParsedTemplate {
  NodeList body;
  std::vector<std::string> names;               // slot -> name
  std::unordered_map<std::string, int> slots;  // name -> slot
};

}  // namespace lmx::chat::detail
