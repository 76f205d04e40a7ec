// Jinja tests: `value is name(args)`.
#include <cmath>

#include "lmx/chat/renderer.h"

namespace lmx::chat {

namespace {

const Value& test_arg(CallArgs& a, std::string_view test) {
  if (a.args.empty())
    throw TemplateRuntimeError("test '" + std::string(test) + "' needs an argument", a.line);
  return a.args[0];
}

int compare_for_test(const Value& a, const Value& b, int line) {
  if (a.is_undefined() || b.is_undefined()) throw TemplateRuntimeError("comparison with an undefined value", line);
  return compare_values(a, b, line);
}

}  // namespace

bool call_test(Renderer& r, std::string_view name, const Value& v, CallArgs& a, bool* out) {
  bool res;
  if (name == "defined") {
    res = !v.is_undefined();
  } else if (name == "undefined") {
    res = v.is_undefined();
  } else if (name == "none") {
    res = v.is_none();
  } else if (name == "boolean") {
    res = v.is_bool();
  } else if (name == "true") {
    res = v.is_bool() && v.as_bool();
  } else if (name == "false") {
    res = v.is_bool() && !v.as_bool();
  } else if (name == "integer") {
    res = v.is_int();
  } else if (name == "float") {
    res = v.is_float();
  } else if (name == "number") {
    res = v.is_number();
  } else if (name == "string") {
    res = v.is_string();
  } else if (name == "mapping") {
    res = v.is_dict();
  } else if (name == "iterable") {
    res = v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  } else if (name == "sequence") {
    res = v.is_string() || v.is_dict() || v.is_undefined() || (v.is_list() && v.flavor() != ListFlavor::Generator);
  } else if (name == "callable") {
    res = v.is_callable() || v.is_loop();
  } else if (name == "escaped") {
    res = v.is_markup();
  } else if (name == "odd" || name == "even") {
    if (!v.is_int() && !v.is_bool()) {
      if (v.is_float()) {
        double m = std::fmod(v.as_float(), 2.0);
        res = name == "odd" ? (m == 1.0 || m == -1.0) : m == 0.0;
        *out = res;
        return true;
      }
      throw TemplateRuntimeError("unsupported operand type(s) for %: '" + std::string(v.type_name()) + "' and 'int'",
                                 a.line);
    }
    int64_t m = v.to_int() % 2;
    res = name == "odd" ? m != 0 : m == 0;
  } else if (name == "divisibleby") {
    const Value& d = test_arg(a, name);
    if (!v.is_number() || !d.is_number()) throw TemplateRuntimeError("divisibleby needs numbers", a.line);
    if (d.to_double() == 0) throw TemplateRuntimeError("integer division or modulo by zero", a.line);
    res = (v.is_float() || d.is_float()) ? std::fmod(v.to_double(), d.to_double()) == 0
                                         : v.to_int() % d.to_int() == 0;
  } else if (name == "eq" || name == "equalto" || name == "==") {
    res = values_equal(v, test_arg(a, name));
  } else if (name == "ne" || name == "!=") {
    res = !values_equal(v, test_arg(a, name));
  } else if (name == "lt" || name == "lessthan" || name == "<") {
    res = compare_for_test(v, test_arg(a, name), a.line) < 0;
  } else if (name == "le" || name == "<=") {
    res = compare_for_test(v, test_arg(a, name), a.line) <= 0;
  } else if (name == "gt" || name == "greaterthan" || name == ">") {
    res = compare_for_test(v, test_arg(a, name), a.line) > 0;
  } else if (name == "ge" || name == ">=") {
    res = compare_for_test(v, test_arg(a, name), a.line) >= 0;
  } else if (name == "in") {
    res = contains(test_arg(a, name), v, a.line);
  } else if (name == "sameas") {
    const Value& o = test_arg(a, name);
    res = (v.is_none() && o.is_none()) || (v.is_bool() && o.is_bool() && v.as_bool() == o.as_bool()) ||
          (v.kind() == o.kind() && !v.is_none() && !v.is_bool() && values_equal(v, o) && !v.is_list() &&
           !v.is_dict());
  } else if (name == "lower" || name == "upper") {
    Value s = Value::string(v.to_str());
    CallArgs none;
    none.line = a.line;
    res = call_method(r, s, name == "lower" ? "islower" : "isupper", none).as_bool();
  } else {
    return false;
  }
  *out = res;
  return true;
}

}  // namespace lmx::chat
