// The value type of the template engine: Python-like scalars and containers.
//
// Values are cheap handles: scalars inline, strings and containers shared and
// immutable once built (the sandbox forbids mutating methods), except namespaces.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lmx::chat {

class Value;
struct CallArgs;
class Renderer;

enum class ValueKind : uint8_t {
  Undefined,
  None,
  Bool,
  Int,
  Float,
  String,
  List,  // list, tuple or lazy sequence (generator); see ListFlavor
  Dict,
  Namespace,
  Callable,
  Loop,  // the `loop` variable of a for statement
};

// Python tells lists, tuples and generators apart in printing, len() and JSON.
enum class ListFlavor : uint8_t { List, Tuple, Generator };

struct ValueObject {
  virtual ~ValueObject() = default;
  uint32_t depth = 1;  // container nesting (lists / dicts), bounded by kMaxValueDepth
};

// Lists and dicts nested deeper than this are refused (TemplateLimitError): printing,
// comparing and destroying values recurse.
inline constexpr uint32_t kMaxValueDepth = 1000;

struct StringObject;
struct ListObject;
struct DictObject;
struct NamespaceObject;
struct CallableObject;
struct LoopObject;

class Value {
 public:
  Value() = default;  // undefined
  static Value undefined() { return Value(); }
  // An undefined value that remembers why (for error messages); `unsafe` marks the
  // result of a forbidden attribute: any use beyond printing is a security error.
  static Value undefined(std::string hint, bool unsafe = false);
  static Value none() { return Value(ValueKind::None); }
  static Value boolean(bool b) {
    Value v(ValueKind::Bool);
    v.b_ = b;
    return v;
  }
  static Value integer(int64_t i) {
    Value v(ValueKind::Int);
    v.i_ = i;
    return v;
  }
  static Value floating(double f) {
    Value v(ValueKind::Float);
    v.f_ = f;
    return v;
  }
  static Value string(std::string s);
  // jinja2's Markup (from `|safe`): `+` with a plain string HTML-escapes the plain one.
  static Value markup(std::string s);
  static Value list(std::vector<Value> items, ListFlavor flavor = ListFlavor::List);
  static Value dict(std::vector<std::pair<Value, Value>> items);  // keys unique
  static Value dict_object(std::shared_ptr<DictObject> d);
  static Value new_namespace();
  static Value callable(std::string name, std::function<Value(Renderer&, CallArgs&)> fn);
  static Value loop(std::shared_ptr<LoopObject> l);

  ValueKind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == ValueKind::Undefined; }
  bool is_none() const { return kind_ == ValueKind::None; }
  bool is_bool() const { return kind_ == ValueKind::Bool; }
  bool is_int() const { return kind_ == ValueKind::Int; }
  bool is_float() const { return kind_ == ValueKind::Float; }
  bool is_number() const { return kind_ == ValueKind::Int || kind_ == ValueKind::Float || kind_ == ValueKind::Bool; }
  bool is_string() const { return kind_ == ValueKind::String; }
  bool is_list() const { return kind_ == ValueKind::List; }
  bool is_dict() const { return kind_ == ValueKind::Dict; }
  bool is_namespace() const { return kind_ == ValueKind::Namespace; }
  bool is_callable() const { return kind_ == ValueKind::Callable; }
  bool is_loop() const { return kind_ == ValueKind::Loop; }
  bool is_unsafe_undefined() const { return kind_ == ValueKind::Undefined && flag_ != 0; }
  bool is_markup() const { return kind_ == ValueKind::String && flag_ != 0; }
  ListFlavor flavor() const { return static_cast<ListFlavor>(flag_); }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }
  double as_float() const { return f_; }
  // Numeric value of a Bool, Int or Float.
  double to_double() const {
    return kind_ == ValueKind::Float ? f_ : kind_ == ValueKind::Int ? static_cast<double>(i_) : (b_ ? 1.0 : 0.0);
  }
  int64_t to_int() const { return kind_ == ValueKind::Int ? i_ : kind_ == ValueKind::Bool ? (b_ ? 1 : 0) : static_cast<int64_t>(f_); }
  const std::string& str() const;
  const std::vector<Value>& items() const;
  const DictObject& dict_ref() const;
  NamespaceObject& ns() const;
  const CallableObject& fn() const;
  LoopObject& loop_ref() const;
  const std::string& undefined_hint() const;  // empty when none was given
  std::weak_ptr<ValueObject> weak_object() const { return obj_; }

  // Python truthiness (generators are always true; undefined is false).
  bool truthy() const;
  // Python's str(): what `{{ value }}` prints. Appends to out.
  void append_str(std::string& out) const;
  std::string to_str() const {
    std::string s;
    append_str(s);
    return s;
  }
  // Python's repr(), used for containers' str().
  void append_repr(std::string& out) const;
  // Python type name used in error messages ('str', 'int', 'NoneType', 'list', ...).
  std::string_view type_name() const;

 private:
  explicit Value(ValueKind k) : kind_(k) {}
  ValueKind kind_ = ValueKind::Undefined;
  uint8_t flag_ = 0;
  union {
    bool b_;
    int64_t i_ = 0;
    double f_;
  };
  std::shared_ptr<ValueObject> obj_;
};

struct StringObject : ValueObject {
  std::string s;
};
struct ListObject : ValueObject {
  std::vector<Value> items;
};
struct DictObject : ValueObject {
  std::vector<std::pair<Value, Value>> items;  // insertion order
  const Value* find(std::string_view key) const;
  const Value* find(const Value& key) const;
};
struct NamespaceObject : ValueObject {
  std::vector<std::pair<std::string, Value>> attrs;
  const Value* find(std::string_view key) const;
  void set(std::string_view key, Value v);
};
struct CallableObject : ValueObject {
  std::string name;
  std::function<Value(Renderer&, CallArgs&)> fn;
};

// Arguments of a call: positional, then keyword (in call order).
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
  int line = 0;
  // The value of keyword `name`, or positional `pos` when given, else nullptr.
  const Value* get(std::string_view name, size_t pos = SIZE_MAX) const;
};

// Python equality (1 == 1.0 == True, containers element-wise).
bool values_equal(const Value& a, const Value& b);
// Python ordering; throws TemplateRuntimeError (line) for incomparable types.
// Returns <0, 0, >0.
int compare_values(const Value& a, const Value& b, int line);
// Python float repr ("1.0", "1e+16", "0.1").
void append_float_repr(std::string& out, double f);
// Python repr of a string ('it''s' -> "it's").
void append_string_repr(std::string& out, std::string_view s);
// json.dumps(value, ensure_ascii=False, indent=indent, separators=default,
// sort_keys=False), as transformers' tojson filter; indent < 0 means None.
struct JsonFormat {
  int indent = -1;            // < 0: None (one line)
  bool ensure_ascii = false;  // escape non-ASCII as \uXXXX (surrogate pairs above U+FFFF)
  std::string item_separator = ", ";  // json.dumps defaults: ", " / ": ", "," with indent
  std::string key_separator = ": ";
};
void append_json(std::string& out, const Value& v, const JsonFormat& format, int line);
// markupsafe.escape of text: & < > " ' become entities.
std::string html_escape(std::string_view s);

// Number of Unicode code points in UTF-8 text.
size_t utf8_length(std::string_view s);

}  // namespace lmx::chat
