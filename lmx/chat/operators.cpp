// Binary operators and `in` with Python semantics.
#include <cmath>

#include "lmx/chat/renderer.h"

namespace lmx::chat {

namespace {

[[noreturn]] void undefined_operand(const Value& v, int line) {
  if (v.is_unsafe_undefined()) throw TemplateSecurityError(v.undefined_hint(), line);
  throw TemplateRuntimeError(v.undefined_hint().empty() ? "value is undefined" : v.undefined_hint(), line);
}

[[noreturn]] void unsupported(char op, const Value& a, const Value& b, int line) {
  std::string sym = op == 'F' ? "//" : op == 'P' ? "** or pow()" : std::string(1, op);
  throw TemplateRuntimeError("unsupported operand type(s) for " + sym + ": '" + std::string(a.type_name()) +
                                 "' and '" + std::string(b.type_name()) + "'",
                             line);
}

int64_t checked(bool overflow, int64_t v, int line) {
  if (overflow) throw TemplateLimitError("integer overflow", line);
  return v;
}

Value repeat(Renderer& r, const Value& seq, int64_t n) {
  if (n < 0) n = 0;
  if (seq.is_string()) {
    r.check_size(seq.str().size() * static_cast<size_t>(n));
    std::string out;
    out.reserve(seq.str().size() * static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out += seq.str();
    return seq.is_markup() ? Value::markup(std::move(out)) : Value::string(std::move(out));
  }
  r.check_size(seq.items().size() * static_cast<size_t>(n));
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.items().begin(), seq.items().end());
  return Value::list(std::move(out), seq.flavor());
}

}  // namespace

Value binary_op(Renderer& r, char op, const Value& a, const Value& b) {
  int line = r.line();
  if (op == '~') {
    std::string s = a.to_str();
    b.append_str(s);
    r.check_size(s.size());
    return Value::string(std::move(s));
  }
  if (a.is_undefined()) undefined_operand(a, line);
  if (b.is_undefined()) undefined_operand(b, line);
  bool nums = a.is_number() && b.is_number();
  bool ints = nums && !a.is_float() && !b.is_float();
  switch (op) {
    case '+':
      if (ints) {
        int64_t v = 0;
        bool overflow = __builtin_add_overflow(a.to_int(), b.to_int(), &v);
        return Value::integer(checked(overflow, v, line));
      }
      if (nums) return Value::floating(a.to_double() + b.to_double());
      if (a.is_markup() || b.is_markup()) {
        // markupsafe: Markup + str escapes the plain operand; the result is Markup.
        if ((a.is_string() || a.is_undefined()) && (b.is_string() || b.is_undefined())) {
          std::string s = a.is_markup() ? a.str() : html_escape(a.str());
          s += b.is_markup() ? b.str() : html_escape(b.str());
          r.check_size(s.size());
          return Value::markup(std::move(s));
        }
      }
      if (a.is_string() && b.is_string()) {
        r.check_size(a.str().size() + b.str().size());
        std::string s;
        s.reserve(a.str().size() + b.str().size());
        s += a.str();
        s += b.str();
        return Value::string(std::move(s));
      }
      if (a.is_list() && b.is_list() && a.flavor() == b.flavor() && a.flavor() != ListFlavor::Generator) {
        std::vector<Value> items = a.items();
        items.insert(items.end(), b.items().begin(), b.items().end());
        return Value::list(std::move(items), a.flavor());
      }
      if (a.is_string())
        throw TemplateRuntimeError("can only concatenate str (not \"" + std::string(b.type_name()) + "\") to str",
                                   line);
      if (a.is_list() && a.flavor() != ListFlavor::Generator)
        throw TemplateRuntimeError("can only concatenate " + std::string(a.type_name()) + " (not \"" +
                                       std::string(b.type_name()) + "\") to " + std::string(a.type_name()),
                                   line);
      unsupported(op, a, b, line);
    case '-':
      if (ints) {
        int64_t v = 0;
        bool overflow = __builtin_sub_overflow(a.to_int(), b.to_int(), &v);
        return Value::integer(checked(overflow, v, line));
      }
      if (nums) return Value::floating(a.to_double() - b.to_double());
      unsupported(op, a, b, line);
    case '*':
      if (ints) {
        int64_t v = 0;
        bool overflow = __builtin_mul_overflow(a.to_int(), b.to_int(), &v);
        return Value::integer(checked(overflow, v, line));
      }
      if (nums) return Value::floating(a.to_double() * b.to_double());
      if ((a.is_string() || (a.is_list() && a.flavor() != ListFlavor::Generator)) && (b.is_int() || b.is_bool()))
        return repeat(r, a, b.to_int());
      if ((b.is_string() || (b.is_list() && b.flavor() != ListFlavor::Generator)) && (a.is_int() || a.is_bool()))
        return repeat(r, b, a.to_int());
      if (a.is_string() || b.is_string())
        throw TemplateRuntimeError("can't multiply sequence by non-int of type '" +
                                       std::string(a.is_string() ? b.type_name() : a.type_name()) + "'",
                                   line);
      unsupported(op, a, b, line);
    case '/':
      if (!nums) unsupported(op, a, b, line);
      if (b.to_double() == 0.0) throw TemplateRuntimeError("division by zero", line);
      return Value::floating(a.to_double() / b.to_double());
    case 'F':
      if (!nums) unsupported(op, a, b, line);
      if (b.to_double() == 0.0)
        throw TemplateRuntimeError(ints ? "integer division or modulo by zero" : "float floor division by zero",
                                   line);
      if (ints) {
        int64_t x = a.to_int(), y = b.to_int();
        int64_t q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
        return Value::integer(q);
      }
      return Value::floating(std::floor(a.to_double() / b.to_double()));
    case '%':
      if (a.is_string()) return Value::string(py_percent_format(r, a.str(), b));
      if (!nums) unsupported(op, a, b, line);
      if (b.to_double() == 0.0)
        throw TemplateRuntimeError(ints ? "integer division or modulo by zero" : "float modulo", line);
      if (ints) {
        int64_t x = a.to_int(), y = b.to_int();
        int64_t m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) m += y;
        return Value::integer(m);
      } else {
        double x = a.to_double(), y = b.to_double();
        double m = std::fmod(x, y);
        if (m != 0 && ((m < 0) != (y < 0))) m += y;
        return Value::floating(m);
      }
    case 'P':
      if (!nums) unsupported(op, a, b, line);
      if (ints && b.to_int() >= 0) {
        int64_t base = a.to_int(), e = b.to_int(), result = 1;
        while (e > 0) {
          if (e & 1) checked(__builtin_mul_overflow(result, base, &result), 0, line);
          e >>= 1;
          if (e > 0) checked(__builtin_mul_overflow(base, base, &base), 0, line);
        }
        return Value::integer(result);
      }
      return Value::floating(std::pow(a.to_double(), b.to_double()));
    default: break;
  }
  unsupported(op, a, b, line);
}

bool contains(const Value& container, const Value& item, int line) {
  switch (container.kind()) {
    case ValueKind::String:
      if (!item.is_string())
        throw TemplateRuntimeError(
            "'in <string>' requires string as left operand, not " + std::string(item.type_name()), line);
      return container.str().find(item.str()) != std::string::npos;
    case ValueKind::List:
      for (const Value& v : container.items())
        if (values_equal(v, item)) return true;
      return false;
    case ValueKind::Dict: return container.dict_ref().find(item) != nullptr;
    case ValueKind::Undefined:
      if (container.is_unsafe_undefined()) throw TemplateSecurityError(container.undefined_hint(), line);
      return false;
    case ValueKind::Namespace: return false;
    default:
      throw TemplateRuntimeError("argument of type '" + std::string(container.type_name()) + "' is not iterable",
                                 line);
  }
}

}  // namespace lmx::chat
