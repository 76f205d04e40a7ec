#include "lmx/chat/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "lmx/chat/template_error.h"

namespace lmx::chat {

namespace {

uint32_t child_depth(const std::shared_ptr<ValueObject>& obj, ValueKind kind) {
  return (kind == ValueKind::List || kind == ValueKind::Dict) && obj ? obj->depth : 0;
}
void check_depth(uint32_t depth) {
  if (depth > kMaxValueDepth)
    throw TemplateLimitError("value nested deeper than " + std::to_string(kMaxValueDepth) + " levels", 0);
}
// Bounds recursion through namespaces, which can contain themselves.
struct PrintDepth {
  static inline thread_local int depth = 0;
  PrintDepth() {
    if (++depth > static_cast<int>(kMaxValueDepth) + 8) {
      --depth;
      throw TemplateLimitError("value nested too deeply to print", 0);
    }
  }
  ~PrintDepth() { --depth; }
};


const std::string kEmpty;
const std::vector<Value> kNoItems;

// Decodes one UTF-8 code point at s[i]; advances i. Invalid bytes map to themselves.
uint32_t next_code_point(std::string_view s, size_t& i) {
  auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
  if (extra == 0 || i + static_cast<size_t>(extra) >= s.size()) {
    ++i;
    return c;
  }
  uint32_t cp = c & (0x3F >> extra);
  for (int k = 1; k <= extra; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += extra + 1;
  return cp;
}

// Python's str.isprintable() for the code points that matter in chat text.
bool is_printable(uint32_t cp) {
  if (cp < 0x20 || cp == 0x7F) return false;
  if (cp >= 0x80 && cp <= 0xA0) return false;
  if (cp == 0xAD) return false;
  if ((cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) || (cp >= 0x205F && cp <= 0x206F)) return false;
  if (cp == 0x3000 || cp == 0xFEFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
  return true;
}

void append_hex(std::string& out, const char* prefix, uint32_t cp, int width) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%s%0*x", prefix, width, cp);
  out += buf;
}

void append_json_string(std::string& out, std::string_view s, bool ascii) {
  out += '"';
  for (size_t i = 0; i < s.size(); ++i) {
    // Copy the run of characters that need no escaping in one go.
    size_t run = i;
    while (run < s.size()) {
      auto b = static_cast<unsigned char>(s[run]);
      if (b < 0x20 || b == '"' || b == '\\' || (ascii && b >= 0x80)) break;
      ++run;
    }
    if (run > i) {
      out.append(s.data() + i, run - i);
      i = run;
      if (i >= s.size()) break;
    }
    char ch = s[i];
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          append_hex(out, "\\u", c, 4);
        } else if (c >= 0x80 && ascii) {
          size_t j = i;
          uint32_t cp = next_code_point(s, j);
          i = j - 1;
          if (cp >= 0x10000) {
            cp -= 0x10000;
            append_hex(out, "\\u", 0xD800 + (cp >> 10), 4);
            append_hex(out, "\\u", 0xDC00 + (cp & 0x3FF), 4);
          } else {
            append_hex(out, "\\u", cp, 4);
          }
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

void append_indent(std::string& out, int indent, int level) {
  out += '\n';
  out.append(static_cast<size_t>(indent) * static_cast<size_t>(level), ' ');
}

void append_json_level(std::string& out, const Value& v, const JsonFormat& f, int level, int line) {
  PrintDepth guard;
  const int indent = f.indent;
  const bool ascii = f.ensure_ascii;
  switch (v.kind()) {
    case ValueKind::None: out += "null"; return;
    case ValueKind::Bool: out += v.as_bool() ? "true" : "false"; return;
    case ValueKind::Int: out += std::to_string(v.as_int()); return;
    case ValueKind::Float: {
      double x = v.as_float();
      if (std::isnan(x)) {
        out += "NaN";
      } else if (std::isinf(x)) {
        out += x > 0 ? "Infinity" : "-Infinity";
      } else {
        append_float_repr(out, x);
      }
      return;
    }
    case ValueKind::String: append_json_string(out, v.str(), ascii); return;
    case ValueKind::List: {
      if (v.flavor() == ListFlavor::Generator) break;
      const auto& items = v.items();
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += f.item_separator;
        if (indent >= 0) append_indent(out, indent, level + 1);
        append_json_level(out, items[i], f, level + 1, line);
      }
      if (indent >= 0) append_indent(out, indent, level);
      out += ']';
      return;
    }
    case ValueKind::Dict: {
      const auto& items = v.dict_ref().items;
      if (items.empty()) {
        out += "{}";
        return;
      }
      out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += f.item_separator;
        if (indent >= 0) append_indent(out, indent, level + 1);
        const Value& key = items[i].first;
        switch (key.kind()) {
          case ValueKind::String: append_json_string(out, key.str(), ascii); break;
          case ValueKind::Int:
          case ValueKind::Float:
          case ValueKind::Bool:
          case ValueKind::None: {
            std::string k;
            append_json_level(k, key, f, 0, line);
            out += '"';
            out += k;
            out += '"';
            break;
          }
          default:
            throw TemplateRuntimeError(
                "keys must be str, int, float, bool or None, not " + std::string(key.type_name()), line);
        }
        out += f.key_separator;
        append_json_level(out, items[i].second, f, level + 1, line);
      }
      if (indent >= 0) append_indent(out, indent, level);
      out += '}';
      return;
    }
    default: break;
  }
  throw TemplateRuntimeError("Object of type " + std::string(v.type_name()) + " is not JSON serializable", line);
}

}  // namespace

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

Value Value::undefined(std::string hint, bool unsafe) {
  Value v;
  auto o = std::make_shared<StringObject>();
  o->s = std::move(hint);
  v.obj_ = std::move(o);
  v.flag_ = unsafe ? 1 : 0;
  return v;
}

Value Value::string(std::string s) {
  Value v(ValueKind::String);
  auto o = std::make_shared<StringObject>();
  o->s = std::move(s);
  v.obj_ = std::move(o);
  return v;
}

Value Value::markup(std::string s) {
  Value v = string(std::move(s));
  v.flag_ = 1;
  return v;
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}


Value Value::list(std::vector<Value> items, ListFlavor flavor) {
  Value v(ValueKind::List);
  auto o = std::make_shared<ListObject>();
  o->items = std::move(items);
  uint32_t d = 0;
  for (const Value& x : o->items) d = std::max(d, child_depth(x.obj_, x.kind_));
  o->depth = d + 1;
  check_depth(o->depth);
  v.obj_ = std::move(o);
  v.flag_ = static_cast<uint8_t>(flavor);
  return v;
}

Value Value::dict(std::vector<std::pair<Value, Value>> items) {
  auto o = std::make_shared<DictObject>();
  o->items = std::move(items);
  return dict_object(std::move(o));
}

Value Value::dict_object(std::shared_ptr<DictObject> d) {
  uint32_t depth = 0;
  for (const auto& kv : d->items) depth = std::max(depth, child_depth(kv.second.obj_, kv.second.kind_));
  d->depth = depth + 1;
  check_depth(d->depth);
  Value v(ValueKind::Dict);
  v.obj_ = std::move(d);
  return v;
}

Value Value::new_namespace() {
  Value v(ValueKind::Namespace);
  v.obj_ = std::make_shared<NamespaceObject>();
  return v;
}

Value Value::callable(std::string name, std::function<Value(Renderer&, CallArgs&)> fn) {
  Value v(ValueKind::Callable);
  auto o = std::make_shared<CallableObject>();
  o->name = std::move(name);
  o->fn = std::move(fn);
  v.obj_ = std::move(o);
  return v;
}

const std::string& Value::str() const {
  return kind_ == ValueKind::String ? static_cast<const StringObject*>(obj_.get())->s : kEmpty;
}
const std::vector<Value>& Value::items() const {
  return kind_ == ValueKind::List ? static_cast<const ListObject*>(obj_.get())->items : kNoItems;
}
const DictObject& Value::dict_ref() const { return *static_cast<const DictObject*>(obj_.get()); }
NamespaceObject& Value::ns() const { return *static_cast<NamespaceObject*>(obj_.get()); }
const CallableObject& Value::fn() const { return *static_cast<const CallableObject*>(obj_.get()); }
const std::string& Value::undefined_hint() const {
  return kind_ == ValueKind::Undefined && obj_ ? static_cast<const StringObject*>(obj_.get())->s : kEmpty;
}

bool Value::truthy() const {
  switch (kind_) {
    case ValueKind::Undefined:
    case ValueKind::None: return false;
    case ValueKind::Bool: return b_;
    case ValueKind::Int: return i_ != 0;
    case ValueKind::Float: return f_ != 0.0;
    case ValueKind::String: return !str().empty();
    case ValueKind::List: return flavor() == ListFlavor::Generator || !items().empty();
    case ValueKind::Dict: return !dict_ref().items.empty();
    default: return true;
  }
}

std::string_view Value::type_name() const {
  switch (kind_) {
    case ValueKind::Undefined: return "Undefined";
    case ValueKind::None: return "NoneType";
    case ValueKind::Bool: return "bool";
    case ValueKind::Int: return "int";
    case ValueKind::Float: return "float";
    case ValueKind::String: return "str";
    case ValueKind::List:
      return flavor() == ListFlavor::Tuple ? "tuple" : flavor() == ListFlavor::Generator ? "generator" : "list";
    case ValueKind::Dict: return "dict";
    case ValueKind::Namespace: return "Namespace";
    case ValueKind::Callable: return "function";
    case ValueKind::Loop: return "LoopContext";
  }
  return "object";
}

void append_float_repr(std::string& out, double f) {
  if (std::isnan(f)) {
    out += "nan";
    return;
  }
  if (std::isinf(f)) {
    out += f > 0 ? "inf" : "-inf";
    return;
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), f, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));
  bool negative = false;
  if (!sci.empty() && sci[0] == '-') {
    negative = true;
    sci.remove_prefix(1);
  }
  size_t e = sci.find('e');
  std::string digits;
  for (size_t i = 0; i < e; ++i)
    if (sci[i] != '.') digits += sci[i];
  int exp10 = 0;
  std::from_chars(sci.data() + e + 1 + (sci[e + 1] == '+' ? 1 : 0), sci.data() + sci.size(), exp10);
  int decpt = exp10 + 1;
  int n = static_cast<int>(digits.size());
  if (negative) out += '-';
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0.";
      out.append(static_cast<size_t>(-decpt), '0');
      out += digits;
    } else if (decpt >= n) {
      out += digits;
      out.append(static_cast<size_t>(decpt - n), '0');
      out += ".0";
    } else {
      out.append(digits, 0, static_cast<size_t>(decpt));
      out += '.';
      out.append(digits, static_cast<size_t>(decpt));
    }
  } else {
    out += digits[0];
    if (n > 1) {
      out += '.';
      out.append(digits, 1);
    }
    int x = decpt - 1;
    out += x < 0 ? "e-" : "e+";
    if (x < 0) x = -x;
    if (x < 10) out += '0';
    out += std::to_string(x);
  }
}

void append_string_repr(std::string& out, std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char quote = has_single && !has_double ? '"' : '\'';
  out += quote;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    uint32_t cp = next_code_point(s, i);
    if (cp == static_cast<uint32_t>(quote) || cp == '\\') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (!is_printable(cp)) {
      if (cp < 0x100) {
        append_hex(out, "\\x", cp, 2);
      } else {
        append_hex(out, "\\u", cp, 4);
      }
    } else {
      out.append(s.substr(start, i - start));
    }
  }
  out += quote;
}

void Value::append_repr(std::string& out) const {
  PrintDepth guard;
  switch (kind_) {
    case ValueKind::String: append_string_repr(out, str()); return;
    case ValueKind::Undefined: out += "Undefined"; return;
    default: append_str(out);
  }
}

void Value::append_str(std::string& out) const {
  PrintDepth guard;
  switch (kind_) {
    case ValueKind::Undefined: return;
    case ValueKind::None: out += "None"; return;
    case ValueKind::Bool: out += b_ ? "True" : "False"; return;
    case ValueKind::Int: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof(buf), i_);
      out.append(buf, r.ptr);
      return;
    }
    case ValueKind::Float: append_float_repr(out, f_); return;
    case ValueKind::String: out += str(); return;
    case ValueKind::List: {
      if (flavor() == ListFlavor::Generator) {
        out += "<generator object>";
        return;
      }
      bool tuple = flavor() == ListFlavor::Tuple;
      out += tuple ? '(' : '[';
      const auto& it = items();
      for (size_t i = 0; i < it.size(); ++i) {
        if (i > 0) out += ", ";
        it[i].append_repr(out);
      }
      if (tuple && it.size() == 1) out += ',';
      out += tuple ? ')' : ']';
      return;
    }
    case ValueKind::Dict: {
      out += '{';
      bool first = true;
      for (const auto& [k, v] : dict_ref().items) {
        if (!first) out += ", ";
        first = false;
        k.append_repr(out);
        out += ": ";
        v.append_repr(out);
      }
      out += '}';
      return;
    }
    case ValueKind::Namespace: {
      out += "<Namespace {";
      bool first = true;
      for (const auto& [k, v] : ns().attrs) {
        if (!first) out += ", ";
        first = false;
        append_string_repr(out, k);
        out += ": ";
        v.append_repr(out);
      }
      out += "}>";
      return;
    }
    case ValueKind::Callable: out += "<function " + fn().name + ">"; return;
    case ValueKind::Loop: out += "<LoopContext>"; return;
  }
}

const Value* DictObject::find(std::string_view key) const {
  for (const auto& kv : items)
    if (kv.first.is_string() && kv.first.str() == key) return &kv.second;
  return nullptr;
}

const Value* DictObject::find(const Value& key) const {
  if (key.is_string()) return find(std::string_view(key.str()));
  for (const auto& kv : items)
    if (values_equal(kv.first, key)) return &kv.second;
  return nullptr;
}

const Value* NamespaceObject::find(std::string_view key) const {
  for (const auto& kv : attrs)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

void NamespaceObject::set(std::string_view key, Value v) {
  for (auto& kv : attrs)
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  attrs.emplace_back(std::string(key), std::move(v));
}

const Value* CallArgs::get(std::string_view name, size_t pos) const {
  for (const auto& kv : kwargs)
    if (kv.first == name) return &kv.second;
  if (pos < args.size()) return &args[pos];
  return nullptr;
}

bool values_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.to_double() == b.to_double();
    return a.to_int() == b.to_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case ValueKind::Undefined:
    case ValueKind::None: return true;
    case ValueKind::String: return a.str() == b.str();
    case ValueKind::List: {
      bool at = a.flavor() == ListFlavor::Tuple, bt = b.flavor() == ListFlavor::Tuple;
      if (at != bt) return false;
      const auto &x = a.items(), &y = b.items();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!values_equal(x[i], y[i])) return false;
      return true;
    }
    case ValueKind::Dict: {
      const auto &x = a.dict_ref().items, &y = b.dict_ref().items;
      if (x.size() != y.size()) return false;
      for (const auto& kv : x) {
        const Value* other = b.dict_ref().find(kv.first);
        if (!other || !values_equal(kv.second, *other)) return false;
      }
      return true;
    }
    case ValueKind::Namespace: return &a.ns() == &b.ns();
    case ValueKind::Callable: return &a.fn() == &b.fn();
    default: return false;
  }
}

int compare_values(const Value& a, const Value& b, int line) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      double x = a.to_double(), y = b.to_double();
      return x < y ? -1 : x > y ? 1 : 0;
    }
    int64_t x = a.to_int(), y = b.to_int();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    int c = a.str().compare(b.str());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list() && a.flavor() == b.flavor() && a.flavor() != ListFlavor::Generator) {
    const auto &x = a.items(), &y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (values_equal(x[i], y[i])) continue;
      return compare_values(x[i], y[i], line);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  throw TemplateRuntimeError("'<' not supported between instances of '" + std::string(a.type_name()) + "' and '" +
                                 std::string(b.type_name()) + "'",
                             line);
}

void append_json(std::string& out, const Value& v, const JsonFormat& format, int line) {
  append_json_level(out, v, format, 0, line);
}

}  // namespace lmx::chat
