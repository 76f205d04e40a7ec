// Tree-walking evaluator of parsed templates (internal to lmx/chat).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lmx/chat/ast.h"
#include "lmx/chat/template.h"
#include "lmx/chat/template_error.h"
#include "lmx/chat/value.h"

namespace lmx::chat {

namespace detail {

// Variables of one frame (template top level, loop body, macro call, with block),
// keyed by the template's name slots.
struct Scope {
  std::vector<std::pair<int, Value>> vars;
  std::shared_ptr<Scope> parent;

  const Value* find_local(int slot) const {
    for (const auto& kv : vars)
      if (kv.first == slot) return &kv.second;
    return nullptr;
  }
  const Value* find(int slot) const {
    for (const Scope* s = this; s; s = s->parent.get())
      if (const Value* v = s->find_local(slot)) return v;
    return nullptr;
  }
  void set(int slot, Value v) {
    for (auto& kv : vars)
      if (kv.first == slot) {
        kv.second = std::move(v);
        return;
      }
    vars.emplace_back(slot, std::move(v));
  }
};
using ScopePtr = std::shared_ptr<Scope>;

}  // namespace detail

struct LoopObject : ValueObject {
  const std::vector<Value>* items = nullptr;
  int64_t index0 = 0;
  int depth0 = 0;
  const detail::ForNode* node = nullptr;  // for recursive loop(...) calls
  std::weak_ptr<detail::Scope> scope;     // scope the loop statement runs in (no cycle)
  bool has_changed = false;
  std::vector<Value> last_changed;
};

// Python-style error raising with the current line.
[[noreturn]] void throw_type_error(const std::string& message, int line);

class Renderer {
 public:
  Renderer(const detail::ParsedTemplate& tpl, const RenderOptions& options);

  std::string render(const Value& context);

  int line() const { return line_; }
  const RenderOptions& options() const { return options_; }
  const RenderLimits& limits() const { return options_.limits; }

  // Calls a callable value (macro, builtin, bound method).
  Value call_value(const Value& callee, CallArgs& args);
  // jinja's environment.getattr / getitem with sandbox rules.
  Value get_attr(const Value& obj, std::string_view name);
  Value get_item(const Value& obj, const Value& key);
  // Applies a named test / filter to a value (used by select, map, ...).
  bool apply_test(std::string_view name, const Value& subject, CallArgs& args, int id = -2);
  Value apply_filter(std::string_view name, const Value& subject, CallArgs& args, int id = -2);
  // Iterates a value as Python's iter() would (strings by code point, dicts by key).
  std::vector<Value> iterate(const Value& v);
  // Throws TemplateLimitError when `bytes` exceeds the output limit.
  void check_size(size_t bytes) const;
  void count_iterations(int64_t n);

 private:
  enum class Flow { Normal, Break, Continue };

  const detail::ParsedTemplate& tpl_;
  const RenderOptions& options_;
  std::string* out_ = nullptr;
  int line_ = 0;
  int depth_ = 0;
  int nesting_ = 0;  // eval/exec recursion, bounds the C++ stack
  int64_t macro_calls_ = 0;
  int64_t iterations_ = 0;
  std::chrono::steady_clock::time_point deadline_;
  // Macros refer to their defining scope weakly (a strong reference from a scope to
  // itself would leak it); the renderer keeps those scopes alive until the render ends.
  std::vector<detail::ScopePtr> macro_scopes_;
  // Namespaces can contain themselves; their attributes are dropped after the render.
  std::vector<std::weak_ptr<ValueObject>> namespaces_;

  void release_cycles();

  Flow exec_body(const detail::NodeList& body, const detail::ScopePtr& scope);
  Flow exec(const detail::Node* node, const detail::ScopePtr& scope);
  void exec_for(const detail::ForNode* node, const detail::ScopePtr& scope, const Value& iterable, int depth0);
  void exec_macro_def(const detail::MacroNode* node, const detail::ScopePtr& scope);
  Value make_macro(const detail::MacroNode* node, const detail::ScopePtr& scope);
  Value call_macro(const detail::MacroNode* node, const detail::ScopePtr& closure, CallArgs& args);
  void assign(const detail::Target& target, const Value& value, const detail::ScopePtr& scope);
  std::string capture(const detail::NodeList& body, const detail::ScopePtr& scope);
  void emit(std::string_view text);
  bool emit_concat(const detail::BinaryNode* node, const detail::ScopePtr& scope);
  void check_time();

  Value eval(const detail::Node* node, const detail::ScopePtr& scope);
  Value eval_name(const detail::NameNode* node, const detail::ScopePtr& scope);
  const Value* lookup_in_place(const detail::Node* node, const detail::ScopePtr& scope) const;
  Value eval_binary(const detail::BinaryNode* node, const detail::ScopePtr& scope);
  Value eval_compare(const detail::CompareNode* node, const detail::ScopePtr& scope);
  Value eval_call(const detail::CallNode* node, const detail::ScopePtr& scope, const Value* caller);
  Value eval_filter(const detail::FilterNode* node, const detail::ScopePtr& scope, const Value* base);
  Value eval_slice(const detail::SliceNode* node, const detail::ScopePtr& scope);
  void eval_args(const detail::ArgList& list, const detail::ScopePtr& scope, CallArgs& out);
  Value call_builtin(detail::Builtin b, CallArgs& args);
  Value call_loop(LoopObject& loop, CallArgs& args);
};

// --- built-in library (filters.cpp, tests.cpp, methods.cpp) ------------------------
// `id` comes from filter_id / test_id (ast.h); each returns false when it is -1.
bool call_filter(Renderer& r, int id, std::string_view name, const Value& subject, CallArgs& args, Value* result);
bool call_test(Renderer& r, int id, std::string_view name, const Value& subject, CallArgs& args, bool* result);
// Methods of str / list / dict values: `obj.name(args)`.
enum class MethodKind { None, Safe, Unsafe };
MethodKind find_method(const Value& obj, std::string_view name);
Value call_method(Renderer& r, const Value& obj, std::string_view name, CallArgs& args);
// Binary operators with Python semantics (+ - * / // % ** ~).
Value binary_op(Renderer& r, char op, const Value& a, const Value& b);
bool contains(const Value& container, const Value& item, int line);

// Python string helpers shared by filters and methods (UTF-8 aware).
std::vector<std::string> split_code_points(std::string_view s);
std::string py_strip(std::string_view s, const Value* chars, bool left, bool right);
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_title(std::string_view s);
std::string py_capitalize(std::string_view s);
// Throws TemplateLimitError (line) once the result would pass max_bytes.
std::string py_replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count,
                       size_t max_bytes, int line);
std::vector<Value> py_split(std::string_view s, const Value* sep, int64_t maxsplit, bool from_right);
std::string py_percent_format(Renderer& r, std::string_view fmt, const Value& args);

}  // namespace lmx::chat
