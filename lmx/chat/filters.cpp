// Jinja filters (`value | name(args)`) with jinja2 3.1 semantics, plus transformers'
// tojson.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>

#include "lmx/chat/renderer.h"

namespace lmx::chat {

namespace {

constexpr std::string_view kFilterNames[] = {
    "length", "count", "tojson", "join", "trim", "upper", "lower", "title", "capitalize", "string", "safe", "escape", "e", "forceescape", "default", "d", "replace", "first", "last", "list", "items", "dictsort", "sort", "unique", "reverse", "map", "select", "reject", "selectattr", "rejectattr", "int", "float", "abs", "round", "indent", "sum", "min", "max", "wordcount", "batch", "center", "truncate", "format", "attr", "pprint"};

// Index of a name in kFilterNames, at compile time for the dispatch below.
constexpr int K(std::string_view n) {
  for (size_t i = 0; i < std::size(kFilterNames); ++i)
    if (kFilterNames[i] == n) return static_cast<int>(i);
  return -1;
}


[[noreturn]] void fail(const std::string& message, int line) { throw TemplateRuntimeError(message, line); }

const Value* kw(CallArgs& a, std::string_view name, size_t pos) { return a.get(name, pos); }

bool kw_bool(CallArgs& a, std::string_view name, size_t pos, bool dflt) {
  const Value* v = kw(a, name, pos);
  return v ? v->truthy() : dflt;
}

// jinja's soft_str: undefined prints as ''.
std::string soft_str(const Value& v) { return v.to_str(); }

// Result of a Markup-preserving string operation on `src`.
Value like(const Value& src, std::string s) {
  return src.is_markup() ? Value::markup(std::move(s)) : Value::string(std::move(s));
}

// jinja's make_attrgetter: dotted path, integer parts index.
Value get_path(Renderer& r, const Value& item, const std::string& path) {
  Value cur = item;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    cur = r.get_item(cur, digits ? Value::integer(std::stoll(part)) : Value::string(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

// Lower-cases strings for the case-insensitive sort keys of sort / dictsort / unique.
Value fold(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::string(py_lower(v.str()));
  return v;
}

int64_t length_of(const Value& v, int line) {
  switch (v.kind()) {
    case ValueKind::String: return static_cast<int64_t>(utf8_length(v.str()));
    case ValueKind::List:
      if (v.flavor() == ListFlavor::Generator) fail("object of type 'generator' has no len()", line);
      return static_cast<int64_t>(v.items().size());
    case ValueKind::Dict: return static_cast<int64_t>(v.dict_ref().items.size());
    case ValueKind::Undefined: return 0;
    default: fail("object of type '" + std::string(v.type_name()) + "' has no len()", line);
  }
}

bool parse_python_int(std::string s, int base, int64_t* out) {
  s = py_strip(s, nullptr, true, true);
  std::string clean;
  for (char c : s)
    if (c != '_') clean += c;
  if (clean.empty()) return false;
  size_t i = 0;
  bool neg = false;
  if (clean[0] == '+' || clean[0] == '-') {
    neg = clean[0] == '-';
    i = 1;
  }
  if (base == 16 && clean.size() > i + 1 && clean[i] == '0' && (clean[i + 1] == 'x' || clean[i + 1] == 'X')) i += 2;
  if (base == 0) {
    base = 10;
    if (clean.size() > i + 1 && clean[i] == '0') {
      char p = static_cast<char>(std::tolower(clean[i + 1]));
      base = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 10;
      if (base != 10) i += 2;
    }
  }
  if (i >= clean.size()) return false;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(clean.c_str() + i, &end, base);
  if (errno != 0 || *end != '\0') return false;
  *out = neg ? -v : v;
  return true;
}

bool parse_python_float(const std::string& text, double* out) {
  std::string s = py_strip(text, nullptr, true, true);
  std::string clean;
  for (char c : s)
    if (c != '_') clean += c;
  if (clean.empty()) return false;
  char* end = nullptr;
  double v = std::strtod(clean.c_str(), &end);
  if (*end != '\0') return false;
  *out = v;
  return true;
}

std::vector<Value> sorted(Renderer& r, std::vector<Value> items, bool reverse, bool case_sensitive,
                          const Value* attribute) {
  std::vector<std::pair<Value, Value>> keyed;
  keyed.reserve(items.size());
  for (Value& v : items) {
    Value key = attribute && !attribute->is_none() ? get_path(r, v, attribute->to_str()) : v;
    keyed.emplace_back(fold(key, case_sensitive), std::move(v));
  }
  int line = r.line();
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? compare_values(y.first, x.first, line) < 0 : compare_values(x.first, y.first, line) < 0;
  });
  std::vector<Value> out;
  out.reserve(keyed.size());
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return out;
}

std::string do_indent(const std::string& s0, const Value* width, bool first, bool blank) {
  std::string indention = width && width->is_string() ? width->str() : std::string(width ? static_cast<size_t>(std::max<int64_t>(0, width->to_int())) : 4, ' ');
  std::string s = s0 + "\n";
  // str.splitlines on \n, \r\n, \r, \v, \f, \x1c-\x1e
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == '\x1c' || c == '\x1d' || c == '\x1e') {
      lines.push_back(s.substr(start, i - start));
      if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      start = i + 1;
    }
  }
  if (start < s.size()) lines.push_back(s.substr(start));
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) rv += "\n" + indention;
      rv += lines[i];
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      rv += "\n";
      if (!lines[i].empty()) rv += indention;
      rv += lines[i];
    }
  }
  if (first) rv = indention + rv;
  return rv;
}

Value make_list(std::vector<Value> v) { return Value::list(std::move(v)); }
Value make_gen(std::vector<Value> v) { return Value::list(std::move(v), ListFlavor::Generator); }

// select / reject / selectattr / rejectattr
Value select_or_reject(Renderer& r, const Value& seq, CallArgs& a, bool by_attr, bool keep_if) {
  size_t off = 0;
  std::string attr;
  if (by_attr) {
    if (a.args.empty()) fail("selectattr needs an attribute name", a.line);
    attr = a.args[0].to_str();
    off = 1;
  }
  std::string test;
  CallArgs targs;
  targs.line = a.line;
  if (a.args.size() > off) {
    test = a.args[off].to_str();
    targs.args.assign(a.args.begin() + static_cast<std::ptrdiff_t>(off + 1), a.args.end());
    targs.kwargs = a.kwargs;
  }
  const int tid = test.empty() ? -1 : test_id(test);
  std::vector<Value> out;
  if (!seq.truthy()) return make_gen({});  // jinja2: `if value:` before iterating
  for (const Value& item : r.iterate(seq)) {
    Value subject = by_attr ? get_path(r, item, attr) : item;
    bool ok = test.empty() ? subject.truthy() : r.apply_test(test, subject, targs, tid);
    if (ok == keep_if) out.push_back(item);
  }
  return make_gen(std::move(out));
}

}  // namespace

int filter_id(std::string_view name) { return K(name); }

bool call_filter(Renderer& r, int id, std::string_view /*name*/, const Value& v, CallArgs& a, Value* out) {
  if (id < 0) return false;
  int line = a.line;
  if (id == K("length") || id == K("count")) {
    *out = Value::integer(length_of(v, line));
  } else if (id == K("tojson")) {
    // transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
    const Value* ensure_ascii = kw(a, "ensure_ascii", 0);
    const Value* indent = kw(a, "indent", 1);
    const Value* separators = kw(a, "separators", 2);
    const Value* sort_keys = kw(a, "sort_keys", 3);
    JsonFormat format;
    format.ensure_ascii = ensure_ascii && ensure_ascii->truthy();
    if (indent && !indent->is_none()) {
      int64_t n = indent->is_string() ? 0 : std::max<int64_t>(0, indent->to_int());
      if (n > 1024) throw TemplateLimitError("tojson indent too large", line);
      format.indent = static_cast<int>(n);
      format.item_separator = ",";
    }
    if (separators && !separators->is_none()) {
      std::vector<Value> seps = r.iterate(*separators);
      if (seps.size() != 2) fail("separators must be an (item_separator, key_separator) pair", line);
      format.item_separator = seps[0].to_str();
      format.key_separator = seps[1].to_str();
    }
    Value subject = v;
    if (sort_keys && sort_keys->truthy()) {
      std::function<Value(const Value&)> sort_rec = [&](const Value& x) -> Value {
        if (x.is_dict()) {
          auto items = x.dict_ref().items;
          std::stable_sort(items.begin(), items.end(), [&](const auto& p, const auto& q) {
            return compare_values(p.first, q.first, line) < 0;
          });
          for (auto& kv : items) kv.second = sort_rec(kv.second);
          return Value::dict(std::move(items));
        }
        if (x.is_list() && x.flavor() != ListFlavor::Generator) {
          std::vector<Value> items;
          for (const Value& i : x.items()) items.push_back(sort_rec(i));
          return Value::list(std::move(items), x.flavor());
        }
        return x;
      };
      subject = sort_rec(v);
    }
    std::string s;
    append_json(s, subject, format, line);
    r.check_size(s.size());
    *out = Value::string(std::move(s));
  } else if (id == K("join")) {
    const Value* sep = kw(a, "d", 0);
    const Value* attribute = kw(a, "attribute", 1);
    std::string d = sep ? sep->to_str() : "";
    std::string s;
    bool first = true;
    for (const Value& item : r.iterate(v)) {
      if (!first) s += d;
      first = false;
      if (attribute && !attribute->is_none()) {
        get_path(r, item, attribute->to_str()).append_str(s);
      } else {
        item.append_str(s);
      }
    }
    r.check_size(s.size());
    *out = Value::string(std::move(s));
  } else if (id == K("trim")) {
    const Value* chars = kw(a, "chars", 0);
    *out = like(v, py_strip(soft_str(v), chars, true, true));
  } else if (id == K("upper")) {
    *out = like(v, py_upper(soft_str(v)));
  } else if (id == K("lower")) {
    *out = like(v, py_lower(soft_str(v)));
  } else if (id == K("title")) {
    *out = like(v, py_title(soft_str(v)));
  } else if (id == K("capitalize")) {
    *out = like(v, py_capitalize(soft_str(v)));
  } else if (id == K("string")) {
    *out = v.is_string() ? v : Value::string(soft_str(v));
  } else if (id == K("safe")) {
    *out = Value::markup(soft_str(v));
  } else if (id == K("escape") || id == K("e") || id == K("forceescape")) {
    *out = v.is_markup() && id != K("forceescape") ? v : Value::markup(html_escape(soft_str(v)));
  } else if (id == K("default") || id == K("d")) {
    const Value* dflt = kw(a, "default_value", 0);
    bool boolean = kw_bool(a, "boolean", 1, false);
    if (v.is_undefined() || (boolean && !v.truthy())) {
      *out = dflt ? *dflt : Value::string("");
    } else {
      *out = v;
    }
  } else if (id == K("replace")) {
    if (a.args.size() < 2 && !kw(a, "new", 1)) fail("replace() needs old and new", line);
    const Value* old = kw(a, "old", 0);
    const Value* repl = kw(a, "new", 1);
    const Value* count = kw(a, "count", 2);
    *out = Value::string(py_replace(soft_str(v), old->to_str(), repl->to_str(),
                                    count && !count->is_none() ? count->to_int() : -1,
                                    r.limits().max_output_bytes, line));
  } else if (id == K("first")) {
    if (v.is_list()) {
      *out = v.items().empty() ? Value::undefined("No first item, sequence was empty.") : v.items().front();
    } else {
      std::vector<Value> items = r.iterate(v);
      *out = items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
    }
  } else if (id == K("last")) {
    if (v.is_list()) {
      *out = v.items().empty() ? Value::undefined("No last item, sequence was empty.") : v.items().back();
    } else {
      std::vector<Value> items = r.iterate(v);
      *out = items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
    }
  } else if (id == K("list")) {
    *out = make_list(r.iterate(v));
  } else if (id == K("items")) {
    if (v.is_undefined()) {
      *out = make_gen({});
    } else if (!v.is_dict()) {
      fail("Can only get item pairs from a mapping.", line);
    } else {
      std::vector<Value> items;
      for (const auto& [k, x] : v.dict_ref().items) items.push_back(Value::list({k, x}, ListFlavor::Tuple));
      *out = make_gen(std::move(items));
    }
  } else if (id == K("dictsort")) {
    if (!v.is_dict()) fail("dictsort() needs a mapping", line);
    bool case_sensitive = kw_bool(a, "case_sensitive", 0, false);
    const Value* by = kw(a, "by", 1);
    bool reverse = kw_bool(a, "reverse", 2, false);
    bool by_value = by && by->to_str() == "value";
    std::vector<Value> items;
    for (const auto& [k, x] : v.dict_ref().items) items.push_back(Value::list({k, x}, ListFlavor::Tuple));
    std::stable_sort(items.begin(), items.end(), [&](const Value& p, const Value& q) {
      Value kp = fold(p.items()[by_value ? 1 : 0], case_sensitive);
      Value kq = fold(q.items()[by_value ? 1 : 0], case_sensitive);
      return reverse ? compare_values(kq, kp, line) < 0 : compare_values(kp, kq, line) < 0;
    });
    *out = make_list(std::move(items));
  } else if (id == K("sort")) {
    bool reverse = kw_bool(a, "reverse", 0, false);
    bool case_sensitive = kw_bool(a, "case_sensitive", 1, false);
    *out = make_list(sorted(r, r.iterate(v), reverse, case_sensitive, kw(a, "attribute", 2)));
  } else if (id == K("unique")) {
    bool case_sensitive = kw_bool(a, "case_sensitive", 0, false);
    const Value* attribute = kw(a, "attribute", 1);
    std::vector<Value> seen, result;
    for (const Value& item : r.iterate(v)) {
      Value key = fold(attribute && !attribute->is_none() ? get_path(r, item, attribute->to_str()) : item,
                       case_sensitive);
      bool dup = false;
      for (const Value& s : seen)
        if (values_equal(s, key)) {
          dup = true;
          break;
        }
      if (dup) continue;
      seen.push_back(key);
      result.push_back(item);
    }
    *out = make_gen(std::move(result));
  } else if (id == K("reverse")) {
    if (v.is_string()) {
      std::vector<std::string> cps = split_code_points(v.str());
      std::string s;
      for (auto it = cps.rbegin(); it != cps.rend(); ++it) s += *it;
      *out = Value::string(std::move(s));
    } else {
      std::vector<Value> items = r.iterate(v);
      std::reverse(items.begin(), items.end());
      *out = make_gen(std::move(items));
    }
  } else if (id == K("map")) {
    std::vector<Value> result;
    if (!v.truthy()) {
      *out = make_gen({});
      return true;
    }
    const Value* attribute = kw(a, "attribute", SIZE_MAX);
    if (attribute) {
      const Value* dflt = kw(a, "default", SIZE_MAX);
      for (const Value& item : r.iterate(v)) {
        Value x = get_path(r, item, attribute->to_str());
        if (x.is_undefined() && dflt) x = *dflt;
        result.push_back(std::move(x));
      }
    } else {
      if (a.args.empty()) fail("map requires a filter argument", line);
      std::string filter = a.args[0].to_str();
      CallArgs fargs;
      fargs.line = line;
      fargs.args.assign(a.args.begin() + 1, a.args.end());
      fargs.kwargs = a.kwargs;
      const int fid = filter_id(filter);
      for (const Value& item : r.iterate(v)) {
        CallArgs copy = fargs;
        result.push_back(r.apply_filter(filter, item, copy, fid));
      }
    }
    *out = make_gen(std::move(result));
  } else if (id == K("select") || id == K("reject")) {
    *out = select_or_reject(r, v, a, false, id == K("select"));
  } else if (id == K("selectattr") || id == K("rejectattr")) {
    *out = select_or_reject(r, v, a, true, id == K("selectattr"));
  } else if (id == K("int")) {
    const Value* dflt = kw(a, "default", 0);
    const Value* base = kw(a, "base", 1);
    int64_t result = 0;
    double f = 0;
    if (v.is_int() || v.is_bool()) {
      *out = Value::integer(v.to_int());
      return true;
    }
    if (v.is_float()) {
      *out = Value::integer(static_cast<int64_t>(std::trunc(v.as_float())));
      return true;
    }
    if (v.is_string() && parse_python_int(v.str(), base ? static_cast<int>(base->to_int()) : 10, &result)) {
      *out = Value::integer(result);
    } else if (v.is_string() && parse_python_float(v.str(), &f) && std::isfinite(f)) {
      *out = Value::integer(static_cast<int64_t>(std::trunc(f)));
    } else {
      *out = dflt ? *dflt : Value::integer(0);
    }
  } else if (id == K("float")) {
    const Value* dflt = kw(a, "default", 0);
    double f = 0;
    if (v.is_number()) {
      *out = Value::floating(v.to_double());
    } else if (v.is_string() && parse_python_float(v.str(), &f)) {
      *out = Value::floating(f);
    } else {
      *out = dflt ? *dflt : Value::floating(0.0);
    }
  } else if (id == K("abs")) {
    if (v.is_float()) {
      *out = Value::floating(std::fabs(v.as_float()));
    } else if (v.is_int() || v.is_bool()) {
      *out = Value::integer(std::llabs(v.to_int()));
    } else {
      fail("bad operand type for abs(): '" + std::string(v.type_name()) + "'", line);
    }
  } else if (id == K("round")) {
    const Value* precision = kw(a, "precision", 0);
    const Value* method = kw(a, "method", 1);
    int p = precision ? static_cast<int>(precision->to_int()) : 0;
    std::string m = method ? method->to_str() : "common";
    if (!v.is_number()) fail("round() needs a number", line);
    if (id == K("round") && m == "common" && !v.is_float() && p >= 0) {
      *out = Value::integer(v.to_int());  // Python: round(int, n >= 0) is the int itself
      return true;
    }
    double x = v.to_double();
    double result;
    if (m == "common") {
      if (p == 0) {
        result = std::nearbyint(x);
      } else {
        char buf[512];
        std::snprintf(buf, sizeof(buf), "%.*f", std::max(0, p), x);
        result = std::strtod(buf, nullptr);
      }
    } else if (m == "ceil" || m == "floor") {
      double scale = std::pow(10.0, p);
      result = (m == "ceil" ? std::ceil(x * scale) : std::floor(x * scale)) / scale;
    } else {
      fail("method must be common, ceil or floor", line);
    }
    *out = Value::floating(result);
  } else if (id == K("indent")) {
    const Value* width = kw(a, "width", 0);
    if (width && !width->is_string()) r.check_size(static_cast<size_t>(std::max<int64_t>(0, width->to_int())));
    *out = like(v, do_indent(soft_str(v), width, kw_bool(a, "first", 1, false), kw_bool(a, "blank", 2, false)));
  } else if (id == K("sum")) {
    const Value* attribute = kw(a, "attribute", 0);
    const Value* start = kw(a, "start", 1);
    Value total = start ? *start : Value::integer(0);
    for (const Value& item : r.iterate(v))
      total = binary_op(r, '+', total,
                        attribute && !attribute->is_none() ? get_path(r, item, attribute->to_str()) : item);
    *out = total;
  } else if (id == K("min") || id == K("max")) {
    bool case_sensitive = kw_bool(a, "case_sensitive", 0, false);
    const Value* attribute = kw(a, "attribute", 1);
    std::vector<Value> items = r.iterate(v);
    if (items.empty()) {
      *out = Value::undefined("No aggregated item, sequence was empty.");
      return true;
    }
    size_t best = 0;
    auto key = [&](const Value& x) {
      return fold(attribute && !attribute->is_none() ? get_path(r, x, attribute->to_str()) : x, case_sensitive);
    };
    Value best_key = key(items[0]);
    for (size_t i = 1; i < items.size(); ++i) {
      Value k = key(items[i]);
      int c = compare_values(k, best_key, line);
      if (id == K("min") ? c < 0 : c > 0) {
        best = i;
        best_key = k;
      }
    }
    *out = items[best];
  } else if (id == K("wordcount")) {
    std::string s = soft_str(v);
    int64_t n = 0;
    bool in_word = false;
    for (char c : s) {
      bool w = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (c & 0x80);
      if (w && !in_word) ++n;
      in_word = w;
    }
    *out = Value::integer(n);
  } else if (id == K("batch")) {
    const Value* count = kw(a, "linecount", 0);
    const Value* fill = kw(a, "fill_with", 1);
    int64_t n = count ? count->to_int() : 1;
    if (n > r.limits().max_loop_iterations) throw TemplateLimitError("batch size too large", line);
    if (n <= 0) fail("batch size must be positive", line);
    std::vector<Value> result, cur;
    for (const Value& item : r.iterate(v)) {
      cur.push_back(item);
      if (static_cast<int64_t>(cur.size()) == n) {
        result.push_back(make_list(std::move(cur)));
        cur.clear();
      }
    }
    if (!cur.empty()) {
      if (fill && !fill->is_none())
        while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*fill);
      result.push_back(make_list(std::move(cur)));
    }
    *out = make_gen(std::move(result));
  } else if (id == K("center")) {
    const Value* width = kw(a, "width", 0);
    CallArgs ca;
    ca.line = line;
    ca.args.push_back(width ? *width : Value::integer(80));
    *out = call_method(r, like(v, soft_str(v)), "center", ca);
  } else if (id == K("truncate")) {
    std::string s = soft_str(v);
    const Value* lengthv = kw(a, "length", 0);
    bool killwords = kw_bool(a, "killwords", 1, false);
    const Value* endv = kw(a, "end", 2);
    const Value* leewayv = kw(a, "leeway", 3);
    int64_t length = lengthv ? lengthv->to_int() : 255;
    std::string end = endv ? endv->to_str() : "...";
    int64_t leeway = leewayv && !leewayv->is_none() ? leewayv->to_int() : 5;
    std::vector<std::string> cps = split_code_points(s);
    if (static_cast<int64_t>(cps.size()) <= length + leeway) {
      *out = Value::string(s);
      return true;
    }
    int64_t keep = std::max<int64_t>(0, length - static_cast<int64_t>(utf8_length(end)));
    std::string head;
    for (int64_t i = 0; i < keep && i < static_cast<int64_t>(cps.size()); ++i) head += cps[static_cast<size_t>(i)];
    if (!killwords) {
      size_t sp = head.rfind(' ');
      if (sp != std::string::npos) head = head.substr(0, sp);
    }
    *out = Value::string(head + end);
  } else if (id == K("format")) {
    std::vector<Value> items = a.args;
    *out = Value::string(py_percent_format(r, soft_str(v), Value::list(std::move(items), ListFlavor::Tuple)));
  } else if (id == K("attr")) {
    if (a.args.empty()) fail("attr() needs a name", line);
    std::string attr = a.args[0].to_str();
    // jinja2's attr() is getattr only: dict keys are not attributes.
    if (v.is_dict() && find_method(v, attr) == MethodKind::None && attr.rfind("__", 0) != 0) {
      *out = Value::undefined("'dict object' has no attribute '" + attr + "'");
    } else {
      *out = r.get_attr(v, attr);
    }
  } else if (id == K("pprint")) {
    std::string s;
    v.append_repr(s);
    *out = Value::string(std::move(s));
  } else {
    return false;
  }
  return true;
}

}  // namespace lmx::chat
