#include "lmx/chat/renderer.h"

#include <cmath>

namespace lmx::chat {

using namespace detail;

namespace {

// Expression / statement recursion of one render (macro calls included): about 1 KB of
// stack per level at most, so this stays far below an 8 MB thread stack.
constexpr int kMaxNesting = 3000;

// Frees a recursion level on every exit path.
struct DepthScope {
  int& depth;
  DepthScope(int& d, int limit, int line) : depth(d) {
    if (++depth > limit) {
      --depth;
      throw TemplateLimitError(limit == kMaxNesting ? "template evaluation nested too deeply"
                                                   : "maximum recursion depth (" + std::to_string(limit) + ") exceeded",
                               line);
    }
  }
  ~DepthScope() { --depth; }
};

// Sends output to another buffer for a scope (macro bodies, set blocks), restoring
// it on every exit path without catching and rethrowing.
struct OutputRedirect {
  std::string*& out;
  std::string* saved;
  OutputRedirect(std::string*& o, std::string* to) : out(o), saved(o) { out = to; }
  ~OutputRedirect() { out = saved; }
};

[[noreturn]] void throw_undefined(const Value& v, int line) {
  if (v.is_unsafe_undefined()) throw TemplateSecurityError(v.undefined_hint(), line);
  const std::string& hint = v.undefined_hint();
  throw TemplateRuntimeError(hint.empty() ? "value is undefined" : hint, line);
}

std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  return std::string(v.type_name()) + " object";
}

}  // namespace

Value Value::loop(std::shared_ptr<LoopObject> l) {
  Value v(ValueKind::Loop);
  v.obj_ = std::move(l);
  return v;
}

LoopObject& Value::loop_ref() const { return *static_cast<LoopObject*>(obj_.get()); }

void throw_type_error(const std::string& message, int line) { throw TemplateRuntimeError(message, line); }

Renderer::Renderer(const ParsedTemplate& tpl, const RenderOptions& options) : tpl_(tpl), options_(options) {}

std::string Renderer::render(const Value& context) {
  deadline_ = std::chrono::steady_clock::now() +
              std::chrono::microseconds(static_cast<int64_t>(options_.limits.max_seconds * 1e6));
  auto root = std::make_shared<Scope>();
  if (context.is_dict()) {
    // Only names the template mentions can ever be looked up.
    for (const auto& [key, value] : context.dict_ref().items) {
      if (!key.is_string()) continue;
      auto it = tpl_.slots.find(key.str());
      if (it != tpl_.slots.end()) root->set(it->second, value);
    }
  }
  std::string out;
  out_ = &out;
  try {
    exec_body(tpl_.body, root);
  } catch (...) {
    release_cycles();
    throw;
  }
  release_cycles();
  return out;
}

void Renderer::release_cycles() {
  for (auto& weak : namespaces_)
    if (auto obj = weak.lock()) static_cast<NamespaceObject*>(obj.get())->attrs.clear();
  namespaces_.clear();
  for (auto& scope : macro_scopes_) scope->vars.clear();
  macro_scopes_.clear();
}

void Renderer::check_size(size_t bytes) const {
  if (bytes > options_.limits.max_output_bytes)
    throw TemplateLimitError("output exceeds " + std::to_string(options_.limits.max_output_bytes) + " bytes", line_);
}

void Renderer::check_time() {
  if (std::chrono::steady_clock::now() > deadline_)
    throw TemplateLimitError("render time limit of " + std::to_string(options_.limits.max_seconds) + " s exceeded",
                             line_);
}

void Renderer::count_iterations(int64_t n) {
  iterations_ += n;
  if (iterations_ > options_.limits.max_loop_iterations)
    throw TemplateLimitError(
        "more than " + std::to_string(options_.limits.max_loop_iterations) + " loop iterations", line_);
  if ((iterations_ & 255) == 0 || n > 256) check_time();
}

void Renderer::emit(std::string_view text) {
  out_->append(text);
  check_size(out_->size());
}

std::string Renderer::capture(const NodeList& body, const ScopePtr& scope) {
  std::string buf;
  {
    OutputRedirect redirect(out_, &buf);
    exec_body(body, scope);
  }
  return buf;
}

// --- statements ------------------------------------------------------------------

Renderer::Flow Renderer::exec_body(const NodeList& body, const ScopePtr& scope) {
  DepthScope nesting(nesting_, kMaxNesting, line_);
  for (const auto& n : body) {
    Flow f = exec(n.get(), scope);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Renderer::Flow Renderer::exec(const Node* node, const ScopePtr& scope) {
  line_ = node->line;
  switch (node->kind) {
    case NodeKind::Text: emit(static_cast<const TextNode*>(node)->text); break;
    case NodeKind::Print: {
      const Node* expr = static_cast<const PrintNode*>(node)->expr.get();
      if (expr->kind == NodeKind::Binary && emit_concat(static_cast<const BinaryNode*>(expr), scope)) break;
      Value v = eval(expr, scope);
      if (v.is_string()) {
        emit(v.str());
      } else {
        v.append_str(*out_);
        check_size(out_->size());
      }
      break;
    }
    case NodeKind::If: {
      auto* n = static_cast<const IfNode*>(node);
      for (const auto& [cond, body] : n->branches)
        if (eval(cond.get(), scope).truthy()) return exec_body(body, scope);
      return exec_body(n->else_body, scope);
    }
    case NodeKind::For: {
      auto* n = static_cast<const ForNode*>(node);
      exec_for(n, scope, eval(n->iter.get(), scope), 0);
      break;
    }
    case NodeKind::Set: {
      auto* n = static_cast<const SetNode*>(node);
      assign(n->target, eval(n->value.get(), scope), scope);
      break;
    }
    case NodeKind::SetBlock: {
      auto* n = static_cast<const SetBlockNode*>(node);
      Value v = Value::string(capture(n->body, scope));
      if (n->filter) v = eval_filter(static_cast<const FilterNode*>(n->filter.get()), scope, &v);
      assign(n->target, v, scope);
      break;
    }
    case NodeKind::Macro: exec_macro_def(static_cast<const MacroNode*>(node), scope); break;
    case NodeKind::CallBlock: {
      auto* n = static_cast<const CallBlockNode*>(node);
      Value caller = make_macro(n->caller.get(), scope);
      Value v = eval_call(n->call.get(), scope, &caller);
      v.append_str(*out_);
      check_size(out_->size());
      break;
    }
    case NodeKind::FilterBlock: {
      auto* n = static_cast<const FilterBlockNode*>(node);
      Value body = Value::string(capture(n->body, scope));
      Value v = eval_filter(static_cast<const FilterNode*>(n->filter.get()), scope, &body);
      v.append_str(*out_);
      check_size(out_->size());
      break;
    }
    case NodeKind::With: {
      auto* n = static_cast<const WithNode*>(node);
      auto inner = std::make_shared<Scope>();
      inner->parent = scope;
      for (const auto& [target, expr] : n->assignments) assign(target, eval(expr.get(), scope), inner);
      return exec_body(n->body, inner);
    }
    case NodeKind::Break: return Flow::Break;
    case NodeKind::Continue: return Flow::Continue;
    default: throw InternalError("template: expression node in statement position");
  }
  return Flow::Normal;
}

void Renderer::assign(const Target& target, const Value& value, const ScopePtr& scope) {
  switch (target.kind) {
    case Target::Kind::Name: scope->set(target.slot, value); return;
    case Target::Kind::Attr: {
      const Value* ns = scope->find(target.slot);
      if (!ns || !ns->is_namespace())
        throw TemplateRuntimeError("cannot assign attribute on non-namespace object", line_);
      ns->ns().set(target.attr, value);
      return;
    }
    case Target::Kind::Tuple: {
      std::vector<Value> items = iterate(value);
      if (items.size() != target.items.size())
        throw TemplateRuntimeError(items.size() > target.items.size()
                                       ? "too many values to unpack (expected " +
                                             std::to_string(target.items.size()) + ")"
                                       : "not enough values to unpack (expected " +
                                             std::to_string(target.items.size()) + ", got " +
                                             std::to_string(items.size()) + ")",
                                   line_);
      for (size_t i = 0; i < items.size(); ++i) assign(target.items[i], items[i], scope);
      return;
    }
  }
}

void Renderer::exec_for(const ForNode* node, const ScopePtr& scope, const Value& iterable, int depth0) {
  // Lists are iterated in place (values are immutable); other iterables materialize.
  std::vector<Value> owned;
  const std::vector<Value>* seq = &iterable.items();
  if (!iterable.is_list()) {
    owned = iterate(iterable);
    seq = &owned;
  }
  auto inner = std::make_shared<Scope>();
  inner->parent = scope;
  if (node->filter) {
    std::vector<Value> kept;
    for (const Value& item : *seq) {
      count_iterations(1);
      inner->vars.clear();
      assign(node->target, item, inner);
      if (eval(node->filter.get(), inner).truthy()) kept.push_back(item);
    }
    owned = std::move(kept);
    seq = &owned;
  }
  const std::vector<Value>& items = *seq;
  if (items.empty()) {
    line_ = node->line;
    exec_body(node->else_body, scope);
    return;
  }
  auto loop = std::make_shared<LoopObject>();
  loop->items = &items;
  loop->depth0 = depth0;
  loop->node = node;
  loop->scope = scope;
  Value loop_value = Value::loop(loop);
  for (size_t i = 0; i < items.size(); ++i) {
    count_iterations(1);
    inner->vars.clear();
    loop->index0 = static_cast<int64_t>(i);
    inner->vars.emplace_back(node->loop_slot, loop_value);
    assign(node->target, items[i], inner);
    if (exec_body(node->body, inner) == Flow::Break) break;
  }
  inner->vars.clear();  // drop the loop value: it points at `items`
  loop->items = nullptr;
}

Value Renderer::call_loop(LoopObject& loop, CallArgs& args) {
  if (!loop.node || !loop.node->recursive || !loop.items)
    throw TemplateRuntimeError("Tried to call non recursive loop.  Maybe you forgot the 'recursive' modifier.", line_);
  if (args.args.size() != 1) throw TemplateRuntimeError("loop() takes exactly one argument", line_);
  DepthScope guard(depth_, options_.limits.max_depth, line_);
  std::string buf;
  {
    OutputRedirect redirect(out_, &buf);
    ScopePtr scope = loop.scope.lock();
    if (!scope) throw TemplateRuntimeError("loop() called after its loop ended", args.line);
    exec_for(loop.node, scope, args.args[0], loop.depth0 + 1);
  }
  return Value::string(std::move(buf));
}

Value Renderer::make_macro(const MacroNode* node, const ScopePtr& scope) {
  if (macro_scopes_.empty() || macro_scopes_.back() != scope) macro_scopes_.push_back(scope);
  std::weak_ptr<Scope> weak = scope;
  return Value::callable(node->name, [node, weak](Renderer& r, CallArgs& args) {
    ScopePtr closure = weak.lock();
    if (!closure) throw TemplateRuntimeError("macro '" + node->name + "' called after its render ended", args.line);
    return r.call_macro(node, closure, args);
  });
}

void Renderer::exec_macro_def(const MacroNode* node, const ScopePtr& scope) {
  scope->set(node->slot, make_macro(node, scope));
}

Value Renderer::call_macro(const MacroNode* node, const ScopePtr& closure, CallArgs& args) {
  DepthScope guard(depth_, options_.limits.max_depth, args.line);
  // Branching recursion can do exponential work without a loop: watch the clock.
  if ((++macro_calls_ & 63) == 0) check_time();
  auto frame = std::make_shared<Scope>();
  frame->parent = closure;
  std::vector<Value> extra;
  size_t npos = args.args.size();
  for (size_t i = 0; i < npos; ++i) {
    if (i < node->params.size()) {
      frame->set(node->params[i].slot, args.args[i]);
    } else {
      extra.push_back(args.args[i]);
    }
  }
  std::vector<std::pair<Value, Value>> extra_kwargs;
  for (auto& [key, value] : args.kwargs) {
    bool matched = false;
    for (size_t i = 0; i < node->params.size(); ++i)
      if (node->params[i].name == key) {
        if (i < npos)
          throw TemplateRuntimeError("macro '" + node->name + "' got multiple values for argument '" + key + "'",
                                     args.line);
        frame->set(node->params[i].slot, value);
        matched = true;
      }
    if (matched) continue;
    if (key == "caller") {
      frame->set(node->caller_slot, value);
      continue;
    }
    extra_kwargs.emplace_back(Value::string(key), value);
  }
  for (size_t i = npos; i < node->params.size(); ++i) {
    const MacroParam& p = node->params[i];
    if (frame->find_local(p.slot)) continue;
    if (p.default_value) {
      frame->set(p.slot, eval(p.default_value.get(), frame));
    } else {
      frame->set(p.slot, Value::undefined("parameter '" + p.name + "' was not provided"));
    }
  }
  frame->set(node->varargs_slot, Value::list(std::move(extra), ListFlavor::Tuple));
  frame->set(node->kwargs_slot, Value::dict(std::move(extra_kwargs)));
  std::string buf;
  {
    OutputRedirect redirect(out_, &buf);
    exec_body(node->body, frame);
  }
  return Value::string(std::move(buf));
}

// `{{ a + b + c }}` / `{{ a ~ b ~ c }}`: append the operands instead of building the
// intermediate strings. Falls back (returns false, nothing emitted) when a `+` operand
// is not a plain string, so Python semantics (numbers, lists, Markup, errors) hold.
bool Renderer::emit_concat(const BinaryNode* node, const ScopePtr& scope) {
  char op = node->op;
  if (op != '+' && op != '~') return false;
  const Node* leaves[32];
  size_t n = 0;
  const Node* cur = node;
  while (cur->kind == NodeKind::Binary && static_cast<const BinaryNode*>(cur)->op == op && n < 31) {
    leaves[n++] = static_cast<const BinaryNode*>(cur)->right.get();
    cur = static_cast<const BinaryNode*>(cur)->left.get();
  }
  leaves[n++] = cur;
  Value values[32];
  for (size_t i = 0; i < n; ++i) {
    values[i] = eval(leaves[n - 1 - i], scope);
    if (op == '+' && (!values[i].is_string() || values[i].is_markup())) {
      // Fold what we have with Python semantics, then continue operand by operand.
      line_ = node->line;
      Value acc = values[0];
      for (size_t k = 1; k <= i; ++k) acc = binary_op(*this, '+', acc, values[k]);
      for (size_t k = i + 1; k < n; ++k) {
        Value v = eval(leaves[n - 1 - k], scope);
        line_ = node->line;
        acc = binary_op(*this, '+', acc, v);
      }
      acc.append_str(*out_);
      check_size(out_->size());
      return true;
    }
  }
  for (size_t i = 0; i < n; ++i) values[i].append_str(*out_);
  check_size(out_->size());
  return true;
}

// --- expressions -----------------------------------------------------------------

Value Renderer::eval(const Node* node, const ScopePtr& scope) {
  DepthScope nesting(nesting_, kMaxNesting, node->line);
  switch (node->kind) {
    case NodeKind::Literal: return static_cast<const LiteralNode*>(node)->value;
    case NodeKind::Name: return eval_name(static_cast<const NameNode*>(node), scope);
    case NodeKind::ListLit:
    case NodeKind::TupleLit: {
      auto* n = static_cast<const SeqNode*>(node);
      std::vector<Value> items;
      items.reserve(n->items.size());
      for (const auto& e : n->items) items.push_back(eval(e.get(), scope));
      return Value::list(std::move(items), node->kind == NodeKind::TupleLit ? ListFlavor::Tuple : ListFlavor::List);
    }
    case NodeKind::DictLit: {
      auto* n = static_cast<const DictNode*>(node);
      auto d = std::make_shared<DictObject>();
      for (const auto& [k, v] : n->items) {
        Value key = eval(k.get(), scope);
        Value val = eval(v.get(), scope);
        bool replaced = false;
        for (auto& kv : d->items)
          if (values_equal(kv.first, key)) {
            kv.second = val;
            replaced = true;
            break;
          }
        if (!replaced) d->items.emplace_back(std::move(key), std::move(val));
      }
      return Value::dict_object(std::move(d));
    }
    case NodeKind::Unary: {
      auto* n = static_cast<const UnaryNode*>(node);
      Value v = eval(n->operand.get(), scope);
      if (n->op == 'n') return Value::boolean(!v.truthy());
      line_ = node->line;
      if (v.is_undefined()) throw_undefined(v, line_);
      if (v.is_float()) return Value::floating(n->op == '-' ? -v.as_float() : v.as_float());
      if (v.is_int() || v.is_bool()) return Value::integer(n->op == '-' ? -v.to_int() : v.to_int());
      throw_type_error(std::string("bad operand type for unary ") + n->op + ": '" + std::string(v.type_name()) + "'",
                       line_);
    }
    case NodeKind::Binary: return eval_binary(static_cast<const BinaryNode*>(node), scope);
    case NodeKind::Compare: return eval_compare(static_cast<const CompareNode*>(node), scope);
    case NodeKind::CondExpr: {
      auto* n = static_cast<const CondExprNode*>(node);
      if (eval(n->test.get(), scope).truthy()) return eval(n->then_expr.get(), scope);
      if (n->else_expr) return eval(n->else_expr.get(), scope);
      return Value::undefined("the inline if-expression evaluated to false and no else section was defined.");
    }
    case NodeKind::GetAttr: {
      auto* n = static_cast<const GetAttrNode*>(node);
      // `message.role`: read the variable in place (no reference count traffic).
      if (const Value* var = lookup_in_place(n->object.get(), scope)) {
        line_ = node->line;
        return get_attr(*var, n->attr);
      }
      Value obj = eval(n->object.get(), scope);
      line_ = node->line;
      return get_attr(obj, n->attr);
    }
    case NodeKind::GetItem: {
      auto* n = static_cast<const GetItemNode*>(node);
      if (n->index->kind == NodeKind::Literal) {
        const Value& key = static_cast<const LiteralNode*>(n->index.get())->value;
        if (const Value* var = lookup_in_place(n->object.get(), scope)) {
          line_ = node->line;
          return get_item(*var, key);
        }
        Value obj = eval(n->object.get(), scope);
        line_ = node->line;
        return get_item(obj, key);
      }
      Value obj = eval(n->object.get(), scope);
      Value key = eval(n->index.get(), scope);
      line_ = node->line;
      return get_item(obj, key);
    }
    case NodeKind::Slice: return eval_slice(static_cast<const SliceNode*>(node), scope);
    case NodeKind::Call: return eval_call(static_cast<const CallNode*>(node), scope, nullptr);
    case NodeKind::Filter: return eval_filter(static_cast<const FilterNode*>(node), scope, nullptr);
    case NodeKind::Test: {
      auto* n = static_cast<const TestNode*>(node);
      Value subject = eval(n->subject.get(), scope);
      CallArgs args;
      eval_args(n->args, scope, args);
      line_ = node->line;
      bool r = apply_test(n->name, subject, args, n->id);
      return Value::boolean(n->negated ? !r : r);
    }
    default: throw InternalError("template: statement node in expression position");
  }
}

// A variable's value where it lives, when `node` is a plain name that is set; valid
// until the scope changes (no statement runs while an expression is evaluated).
const Value* Renderer::lookup_in_place(const Node* node, const ScopePtr& scope) const {
  if (node->kind != NodeKind::Name) return nullptr;
  return scope->find(static_cast<const NameNode*>(node)->slot);
}

Value Renderer::eval_name(const NameNode* node, const ScopePtr& scope) {
  if (const Value* v = scope->find(node->slot)) return *v;
  if (node->builtin != Builtin::None) {
    Builtin b = node->builtin;
    return Value::callable(node->name, [b](Renderer& r, CallArgs& args) { return r.call_builtin(b, args); });
  }
  return Value::undefined("'" + node->name + "' is undefined");
}

Value Renderer::eval_binary(const BinaryNode* node, const ScopePtr& scope) {
  if (node->op == 'a') {
    Value l = eval(node->left.get(), scope);
    return l.truthy() ? eval(node->right.get(), scope) : l;
  }
  if (node->op == 'o') {
    Value l = eval(node->left.get(), scope);
    return l.truthy() ? l : eval(node->right.get(), scope);
  }
  Value l = eval(node->left.get(), scope);
  Value r = eval(node->right.get(), scope);
  line_ = node->line;
  return binary_op(*this, node->op, l, r);
}

Value Renderer::eval_compare(const CompareNode* node, const ScopePtr& scope) {
  Value left = eval(node->first.get(), scope);
  for (const auto& [op, expr] : node->rest) {
    Value right = eval(expr.get(), scope);
    line_ = node->line;
    bool ok;
    if (op == '=') {
      ok = values_equal(left, right);
    } else if (op == '!') {
      ok = !values_equal(left, right);
    } else if (op == 'i') {
      ok = contains(right, left, line_);
    } else if (op == 'I') {
      ok = !contains(right, left, line_);
    } else {
      if (left.is_undefined()) throw_undefined(left, line_);
      if (right.is_undefined()) throw_undefined(right, line_);
      int c;
      try {
        c = compare_values(left, right, line_);
      } catch (const TemplateRuntimeError&) {
        const char* sym = op == '<' ? "<" : op == 'l' ? "<=" : op == '>' ? ">" : ">=";
        throw TemplateRuntimeError(std::string("'") + sym + "' not supported between instances of '" +
                                       std::string(left.type_name()) + "' and '" + std::string(right.type_name()) +
                                       "'",
                                   line_);
      }
      ok = op == '<' ? c < 0 : op == 'l' ? c <= 0 : op == '>' ? c > 0 : c >= 0;
    }
    if (!ok) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

void Renderer::eval_args(const ArgList& list, const ScopePtr& scope, CallArgs& out) {
  out.args.reserve(list.args.size());
  for (const auto& a : list.args) out.args.push_back(eval(a.get(), scope));
  if (list.star_args)
    for (Value& v : iterate(eval(list.star_args.get(), scope))) out.args.push_back(std::move(v));
  for (const auto& [k, v] : list.kwargs) out.kwargs.emplace_back(k, eval(v.get(), scope));
  if (list.star_kwargs) {
    Value d = eval(list.star_kwargs.get(), scope);
    if (d.is_dict())
      for (const auto& [k, v] : d.dict_ref().items) out.kwargs.emplace_back(k.to_str(), v);
  }
}

Value Renderer::eval_call(const CallNode* node, const ScopePtr& scope, const Value* caller) {
  CallArgs args;
  // Method calls (`s.strip()`) dispatch directly without a bound callable.
  if (node->callee->kind == NodeKind::GetAttr) {
    auto* ga = static_cast<const GetAttrNode*>(node->callee.get());
    Value obj = eval(ga->object.get(), scope);
    line_ = node->line;
    MethodKind mk = find_method(obj, ga->attr);
    if (mk == MethodKind::Safe) {
      eval_args(node->args, scope, args);
      if (caller) args.kwargs.emplace_back("caller", *caller);
      args.line = node->line;
      line_ = node->line;
      return call_method(*this, obj, ga->attr, args);
    }
    Value callee = get_attr(obj, ga->attr);
    eval_args(node->args, scope, args);
    if (caller) args.kwargs.emplace_back("caller", *caller);
    args.line = node->line;
    line_ = node->line;
    return call_value(callee, args);
  }
  if (node->callee->kind == NodeKind::Name) {
    auto* name = static_cast<const NameNode*>(node->callee.get());
    if (name->builtin != Builtin::None && !scope->find(name->slot)) {
      eval_args(node->args, scope, args);
      args.line = node->line;
      line_ = node->line;
      return call_builtin(name->builtin, args);
    }
  }
  Value callee = eval(node->callee.get(), scope);
  eval_args(node->args, scope, args);
  if (caller) args.kwargs.emplace_back("caller", *caller);
  args.line = node->line;
  line_ = node->line;
  return call_value(callee, args);
}

Value Renderer::call_value(const Value& callee, CallArgs& args) {
  switch (callee.kind()) {
    case ValueKind::Callable: return callee.fn().fn(*this, args);
    case ValueKind::Loop: return call_loop(callee.loop_ref(), args);
    case ValueKind::Undefined: throw_undefined(callee, args.line);
    default: throw_type_error("'" + std::string(callee.type_name()) + "' object is not callable", args.line);
  }
}

Value Renderer::eval_filter(const FilterNode* node, const ScopePtr& scope, const Value* base) {
  Value subject;
  if (node->subject) {
    if (node->subject->kind == NodeKind::Filter && base) {
      subject = eval_filter(static_cast<const FilterNode*>(node->subject.get()), scope, base);
    } else {
      subject = eval(node->subject.get(), scope);
    }
  } else if (base) {
    subject = *base;
  }
  CallArgs args;
  eval_args(node->args, scope, args);
  args.line = node->line;
  line_ = node->line;
  return apply_filter(node->name, subject, args, node->id);
}

Value Renderer::apply_filter(std::string_view name, const Value& subject, CallArgs& args, int id) {
  Value result;
  if (!call_filter(*this, id == -2 ? filter_id(name) : id, name, subject, args, &result))
    throw TemplateRuntimeError("No filter named '" + std::string(name) + "' found.", line_);
  return result;
}

bool Renderer::apply_test(std::string_view name, const Value& subject, CallArgs& args, int id) {
  bool result = false;
  if (!call_test(*this, id == -2 ? test_id(name) : id, name, subject, args, &result))
    throw TemplateRuntimeError("No test named '" + std::string(name) + "' found.", line_);
  return result;
}

namespace {

// Python slice indices for a sequence of length n.
void slice_indices(int64_t n, const Value* start, const Value* stop, const Value* step, int64_t* a, int64_t* b,
                   int64_t* s, int line) {
  *s = step && !step->is_none() ? step->to_int() : 1;
  if (*s == 0) throw TemplateRuntimeError("slice step cannot be zero", line);
  auto clamp = [&](const Value* v, int64_t dflt) {
    if (!v || v->is_none()) return dflt;
    int64_t i = v->to_int();
    if (i < 0) {
      i += n;
      if (i < 0) i = *s < 0 ? -1 : 0;
    } else if (i >= n) {
      i = *s < 0 ? n - 1 : n;
    }
    return i;
  };
  *a = clamp(start, *s < 0 ? n - 1 : 0);
  *b = clamp(stop, *s < 0 ? -1 : n);
}

}  // namespace

Value Renderer::eval_slice(const SliceNode* node, const ScopePtr& scope) {
  Value obj = eval(node->object.get(), scope);
  Value start = node->start ? eval(node->start.get(), scope) : Value::none();
  Value stop = node->stop ? eval(node->stop.get(), scope) : Value::none();
  Value step = node->step ? eval(node->step.get(), scope) : Value::none();
  line_ = node->line;
  for (const Value* v : {&start, &stop, &step})
    if (!v->is_none() && !v->is_int() && !v->is_bool())
      throw_type_error("slice indices must be integers or None or have an __index__ method", line_);
  if (obj.is_undefined()) throw_undefined(obj, line_);
  int64_t a, b, s;
  if (obj.is_string()) {
    const std::string& str = obj.str();
    bool ascii = true;
    for (char c : str)
      if (static_cast<unsigned char>(c) >= 0x80) {
        ascii = false;
        break;
      }
    if (ascii) {
      slice_indices(static_cast<int64_t>(str.size()), &start, &stop, &step, &a, &b, &s, line_);
      std::string out;
      if (s == 1) {
        if (b > a) out = str.substr(static_cast<size_t>(a), static_cast<size_t>(b - a));
      } else {
        for (int64_t i = a; s > 0 ? i < b : i > b; i += s) out += str[static_cast<size_t>(i)];
      }
      return obj.is_markup() ? Value::markup(std::move(out)) : Value::string(std::move(out));
    }
    std::vector<std::string> cps = split_code_points(str);
    slice_indices(static_cast<int64_t>(cps.size()), &start, &stop, &step, &a, &b, &s, line_);
    std::string out;
    for (int64_t i = a; s > 0 ? i < b : i > b; i += s) out += cps[static_cast<size_t>(i)];
    return obj.is_markup() ? Value::markup(std::move(out)) : Value::string(std::move(out));
  }
  if (obj.is_list() && obj.flavor() != ListFlavor::Generator) {
    const auto& items = obj.items();
    slice_indices(static_cast<int64_t>(items.size()), &start, &stop, &step, &a, &b, &s, line_);
    std::vector<Value> out;
    for (int64_t i = a; s > 0 ? i < b : i > b; i += s) out.push_back(items[static_cast<size_t>(i)]);
    return Value::list(std::move(out), obj.flavor());
  }
  return Value::undefined(object_type_repr(obj) + " has no element slice");
}

// --- attribute / item access with the sandbox rules ----------------------------------

Value Renderer::get_attr(const Value& obj, std::string_view name) {
  if (obj.is_undefined()) throw_undefined(obj, line_);
  if (name.size() >= 2 && name.substr(0, 2) == "__") {
    return Value::undefined("access to attribute '" + std::string(name) + "' of '" + std::string(obj.type_name()) +
                                "' object is unsafe.",
                            true);
  }
  switch (obj.kind()) {
    case ValueKind::Dict: {
      MethodKind mk = find_method(obj, name);
      if (mk == MethodKind::None) {
        if (const Value* v = obj.dict_ref().find(name)) return *v;
        break;
      }
      [[fallthrough]];
    }
    case ValueKind::String:
    case ValueKind::List: {
      MethodKind mk = find_method(obj, name);
      if (mk == MethodKind::Unsafe)
        return Value::undefined("access to attribute '" + std::string(name) + "' of '" +
                                    std::string(obj.type_name()) + "' object is unsafe.",
                                true);
      if (mk == MethodKind::Safe) {
        std::string method(name);
        return Value::callable(method, [obj, method](Renderer& r, CallArgs& args) {
          return call_method(r, obj, method, args);
        });
      }
      break;
    }
    case ValueKind::Namespace:
      if (const Value* v = obj.ns().find(name)) return *v;
      break;
    case ValueKind::Loop: {
      LoopObject& l = obj.loop_ref();
      if (!l.items) break;
      int64_t n = static_cast<int64_t>(l.items->size());
      int64_t i = l.index0;
      if (name == "index") return Value::integer(i + 1);
      if (name == "index0") return Value::integer(i);
      if (name == "revindex") return Value::integer(n - i);
      if (name == "revindex0") return Value::integer(n - i - 1);
      if (name == "first") return Value::boolean(i == 0);
      if (name == "last") return Value::boolean(i == n - 1);
      if (name == "length") return Value::integer(n);
      if (name == "depth") return Value::integer(l.depth0 + 1);
      if (name == "depth0") return Value::integer(l.depth0);
      if (name == "previtem")
        return i > 0 ? (*l.items)[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item");
      if (name == "nextitem")
        return i + 1 < n ? (*l.items)[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item");
      if (name == "cycle" || name == "changed") {
        std::string method(name);
        Value captured = obj;
        return Value::callable(method, [captured, method](Renderer& r, CallArgs& args) -> Value {
          LoopObject& loop = captured.loop_ref();
          if (method == "cycle") {
            if (args.args.empty()) throw TemplateRuntimeError("no items for cycling given", args.line);
            return args.args[static_cast<size_t>(loop.index0) % args.args.size()];
          }
          (void)r;
          bool changed = !loop.has_changed || loop.last_changed.size() != args.args.size();
          if (!changed)
            for (size_t k = 0; k < args.args.size(); ++k)
              if (!values_equal(loop.last_changed[k], args.args[k])) changed = true;
          loop.has_changed = true;
          loop.last_changed = args.args;
          return Value::boolean(changed);
        });
      }
      break;
    }
    default: break;
  }
  return Value::undefined("'" + object_type_repr(obj) + "' has no attribute '" + std::string(name) + "'");
}

Value Renderer::get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) throw_undefined(obj, line_);
  switch (obj.kind()) {
    case ValueKind::Dict:
      if (const Value* v = obj.dict_ref().find(key)) return *v;
      if (key.is_string()) {
        MethodKind mk = find_method(obj, key.str());
        if (mk != MethodKind::None) return get_attr(obj, key.str());
        return Value::undefined("'" + object_type_repr(obj) + "' has no attribute '" + key.str() + "'");
      }
      break;
    case ValueKind::List:
    case ValueKind::String:
      if (key.is_int() || key.is_bool()) {
        if (obj.is_list() && obj.flavor() == ListFlavor::Generator)
          throw_type_error("'generator' object is not subscriptable", line_);
        int64_t i = key.to_int();
        if (obj.is_list()) {
          const auto& items = obj.items();
          int64_t n = static_cast<int64_t>(items.size());
          if (i < 0) i += n;
          if (i >= 0 && i < n) return items[static_cast<size_t>(i)];
        } else {
          std::vector<std::string> cps = split_code_points(obj.str());
          int64_t n = static_cast<int64_t>(cps.size());
          if (i < 0) i += n;
          if (i >= 0 && i < n)
            return obj.is_markup() ? Value::markup(cps[static_cast<size_t>(i)]) : Value::string(cps[static_cast<size_t>(i)]);
        }
        break;
      }
      if (key.is_string()) return get_attr(obj, key.str());
      break;
    case ValueKind::Namespace:
    case ValueKind::Loop:
      if (key.is_string()) return get_attr(obj, key.str());
      break;
    default: break;
  }
  std::string k;
  key.append_repr(k);
  return Value::undefined(object_type_repr(obj) + " has no element " + k);
}

std::vector<Value> Renderer::iterate(const Value& v) {
  switch (v.kind()) {
    case ValueKind::List: return v.items();
    case ValueKind::Dict: {
      std::vector<Value> keys;
      keys.reserve(v.dict_ref().items.size());
      for (const auto& kv : v.dict_ref().items) keys.push_back(kv.first);
      return keys;
    }
    case ValueKind::String: {
      std::vector<Value> out;
      for (auto& s : split_code_points(v.str())) out.push_back(Value::string(std::move(s)));
      return out;
    }
    case ValueKind::Undefined:
      if (v.is_unsafe_undefined()) throw_undefined(v, line_);
      return {};
    default: throw_type_error("'" + std::string(v.type_name()) + "' object is not iterable", line_);
  }
}

// --- globals -------------------------------------------------------------------------

Value Renderer::call_builtin(Builtin b, CallArgs& args) {
  int line = args.line;
  switch (b) {
    case Builtin::Range: {
      int64_t start = 0, stop = 0, step = 1;
      for (const Value& a : args.args)
        if (!a.is_int() && !a.is_bool())
          throw_type_error("'" + std::string(a.type_name()) + "' object cannot be interpreted as an integer", line);
      if (args.args.size() == 1) {
        stop = args.args[0].to_int();
      } else if (args.args.size() >= 2) {
        start = args.args[0].to_int();
        stop = args.args[1].to_int();
        if (args.args.size() >= 3) step = args.args[2].to_int();
      } else {
        throw_type_error("range expected at least 1 argument, got 0", line);
      }
      if (step == 0) throw TemplateRuntimeError("range() arg 3 must not be zero", line);
      int64_t n = step > 0 ? (stop > start ? (stop - start + step - 1) / step : 0)
                           : (start > stop ? (start - stop - step - 1) / -step : 0);
      if (n > limits().max_loop_iterations)
        throw TemplateLimitError("range of " + std::to_string(n) + " items exceeds the loop iteration limit", line);
      std::vector<Value> items;
      items.reserve(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) items.push_back(Value::integer(start + i * step));
      return Value::list(std::move(items));
    }
    case Builtin::Dict: {
      std::vector<std::pair<Value, Value>> items;
      auto put = [&](Value k, Value v) {
        for (auto& kv : items)
          if (values_equal(kv.first, k)) {
            kv.second = std::move(v);
            return;
          }
        items.emplace_back(std::move(k), std::move(v));
      };
      if (!args.args.empty()) {
        const Value& src = args.args[0];
        if (src.is_dict()) {
          for (const auto& kv : src.dict_ref().items) put(kv.first, kv.second);
        } else {
          for (const Value& pair : iterate(src)) {
            std::vector<Value> kv = iterate(pair);
            if (kv.size() != 2) throw_type_error("dictionary update sequence element has wrong length", line);
            put(kv[0], kv[1]);
          }
        }
      }
      for (auto& [k, v] : args.kwargs) put(Value::string(k), v);
      return Value::dict(std::move(items));
    }
    case Builtin::Namespace: {
      Value ns = Value::new_namespace();
      namespaces_.push_back(ns.weak_object());
      if (!args.args.empty() && args.args[0].is_dict())
        for (const auto& kv : args.args[0].dict_ref().items) ns.ns().set(kv.first.to_str(), kv.second);
      for (auto& [k, v] : args.kwargs) ns.ns().set(k, v);
      return ns;
    }
    case Builtin::Joiner: {
      // joiner(sep=", "): '' on the first call, sep afterwards.
      const Value* sep = args.get("sep", 0);
      std::string s = sep ? sep->to_str() : ", ";
      auto used = std::make_shared<bool>(false);
      return Value::callable("joiner", [s, used](Renderer&, CallArgs&) {
        if (!*used) {
          *used = true;
          return Value::string("");
        }
        return Value::string(s);
      });
    }
    case Builtin::Cycler: {
      // cycler(*items): .next() returns the current item and advances, .current, .reset().
      if (args.args.empty()) throw TemplateRuntimeError("at least one item has to be provided", line);
      Value ns = Value::new_namespace();
      namespaces_.push_back(ns.weak_object());
      auto items = std::make_shared<std::vector<Value>>(args.args);
      auto pos = std::make_shared<size_t>(0);
      std::weak_ptr<ValueObject> weak = ns.weak_object();
      ns.ns().set("current", (*items)[0]);
      ns.ns().set("next", Value::callable("next", [items, pos, weak](Renderer&, CallArgs&) {
        Value v = (*items)[*pos];
        *pos = (*pos + 1) % items->size();
        if (auto obj = weak.lock()) static_cast<NamespaceObject*>(obj.get())->set("current", (*items)[*pos]);
        return v;
      }));
      ns.ns().set("reset", Value::callable("reset", [items, pos, weak](Renderer&, CallArgs&) {
        *pos = 0;
        if (auto obj = weak.lock()) static_cast<NamespaceObject*>(obj.get())->set("current", (*items)[0]);
        return Value::none();
      }));
      return ns;
    }
    case Builtin::RaiseException: {
      const Value* msg = args.get("message", 0);
      throw TemplateRaisedError(msg ? msg->to_str() : std::string());
    }
    case Builtin::StrftimeNow: {
      const Value* fmt = args.get("format", 0);
      if (!fmt || !fmt->is_string()) throw_type_error("strftime_now() argument must be str", line);
      std::tm tm{};
      if (options_.now) {
        tm = *options_.now;
      } else {
        std::time_t t = std::time(nullptr);
        localtime_r(&t, &tm);
      }
      if (fmt->str().empty()) return Value::string("");
      std::string buf(fmt->str().size() * 4 + 64, '\0');
      size_t n = std::strftime(buf.data(), buf.size(), fmt->str().c_str(), &tm);
      buf.resize(n);
      return Value::string(std::move(buf));
    }
    default: break;
  }
  throw TemplateRuntimeError("unsupported global", line);
}

}  // namespace lmx::chat
