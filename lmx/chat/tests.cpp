// Jinja tests: `value is name(args)`.
#include <cmath>

#include "lmx/chat/renderer.h"

namespace lmx::chat {

namespace {

constexpr std::string_view kTestNames[] = {
    "defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number", "string", "mapping", "iterable", "sequence", "callable", "escaped", "odd", "even", "divisibleby", "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=", "in", "sameas", "lower", "upper"};

// Index of a name in kTestNames, at compile time for the dispatch below.
constexpr int K(std::string_view n) {
  for (size_t i = 0; i < std::size(kTestNames); ++i)
    if (kTestNames[i] == n) return static_cast<int>(i);
  return -1;
}


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

int test_id(std::string_view name) { return K(name); }

bool call_test(Renderer& r, int id, std::string_view name, const Value& v, CallArgs& a, bool* out) {
  if (id < 0) return false;
  bool res;
  if (id == K("defined")) {
    res = !v.is_undefined();
  } else if (id == K("undefined")) {
    res = v.is_undefined();
  } else if (id == K("none")) {
    res = v.is_none();
  } else if (id == K("boolean")) {
    res = v.is_bool();
  } else if (id == K("true")) {
    res = v.is_bool() && v.as_bool();
  } else if (id == K("false")) {
    res = v.is_bool() && !v.as_bool();
  } else if (id == K("integer")) {
    res = v.is_int();
  } else if (id == K("float")) {
    res = v.is_float();
  } else if (id == K("number")) {
    res = v.is_number();
  } else if (id == K("string")) {
    res = v.is_string();
  } else if (id == K("mapping")) {
    res = v.is_dict();
  } else if (id == K("iterable")) {
    res = v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  } else if (id == K("sequence")) {
    res = v.is_string() || v.is_dict() || v.is_undefined() || (v.is_list() && v.flavor() != ListFlavor::Generator);
  } else if (id == K("callable")) {
    res = v.is_callable() || v.is_loop();
  } else if (id == K("escaped")) {
    res = v.is_markup();
  } else if (id == K("odd") || id == K("even")) {
    if (!v.is_int() && !v.is_bool()) {
      if (v.is_float()) {
        double m = std::fmod(v.as_float(), 2.0);
        res = id == K("odd") ? (m == 1.0 || m == -1.0) : m == 0.0;
        *out = res;
        return true;
      }
      throw TemplateRuntimeError("unsupported operand type(s) for %: '" + std::string(v.type_name()) + "' and 'int'",
                                 a.line);
    }
    int64_t m = v.to_int() % 2;
    res = id == K("odd") ? m != 0 : m == 0;
  } else if (id == K("divisibleby")) {
    const Value& d = test_arg(a, name);
    if (!v.is_number() || !d.is_number()) throw TemplateRuntimeError("divisibleby needs numbers", a.line);
    if (d.to_double() == 0) throw TemplateRuntimeError("integer division or modulo by zero", a.line);
    res = (v.is_float() || d.is_float()) ? std::fmod(v.to_double(), d.to_double()) == 0
                                         : v.to_int() % d.to_int() == 0;
  } else if (id == K("eq") || id == K("equalto") || id == K("==")) {
    res = values_equal(v, test_arg(a, name));
  } else if (id == K("ne") || id == K("!=")) {
    res = !values_equal(v, test_arg(a, name));
  } else if (id == K("lt") || id == K("lessthan") || id == K("<")) {
    res = compare_for_test(v, test_arg(a, name), a.line) < 0;
  } else if (id == K("le") || id == K("<=")) {
    res = compare_for_test(v, test_arg(a, name), a.line) <= 0;
  } else if (id == K("gt") || id == K("greaterthan") || id == K(">")) {
    res = compare_for_test(v, test_arg(a, name), a.line) > 0;
  } else if (id == K("ge") || id == K(">=")) {
    res = compare_for_test(v, test_arg(a, name), a.line) >= 0;
  } else if (id == K("in")) {
    res = contains(test_arg(a, name), v, a.line);
  } else if (id == K("sameas")) {
    const Value& o = test_arg(a, name);
    res = (v.is_none() && o.is_none()) || (v.is_bool() && o.is_bool() && v.as_bool() == o.as_bool()) ||
          (v.kind() == o.kind() && !v.is_none() && !v.is_bool() && values_equal(v, o) && !v.is_list() &&
           !v.is_dict());
  } else if (id == K("lower") || id == K("upper")) {
    Value s = Value::string(v.to_str());
    CallArgs none;
    none.line = a.line;
    res = call_method(r, s, id == K("lower") ? "islower" : "isupper", none).as_bool();
  } else {
    return false;
  }
  *out = res;
  return true;
}

}  // namespace lmx::chat
