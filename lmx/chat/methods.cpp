// Python methods of str, list and dict values that templates call.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "lmx/chat/renderer.h"

namespace lmx::chat {

namespace {

constexpr std::string_view kStrMethods[] = {
    "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith", "replace",
    "upper", "lower", "title", "capitalize", "format", "join", "find", "rfind", "index", "rindex", "count",
    "isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower", "isnumeric", "isdecimal", "removeprefix",
    "removesuffix", "center", "ljust", "rjust", "zfill", "partition", "rpartition", "casefold", "swapcase",
    "encode", "expandtabs", "istitle"};
constexpr std::string_view kListMethods[] = {"index", "count", "copy"};
constexpr std::string_view kListUnsafe[] = {"append", "clear", "pop", "reverse", "insert", "sort", "extend", "remove"};
constexpr std::string_view kDictMethods[] = {"get", "items", "keys", "values", "copy"};
constexpr std::string_view kDictUnsafe[] = {"clear", "pop", "popitem", "setdefault", "update"};

template <size_t N>
bool in(const std::string_view (&set)[N], std::string_view name) {
  for (std::string_view s : set)
    if (s == name) return true;
  return false;
}

const Value& arg(CallArgs& a, size_t i, std::string_view method) {
  if (i >= a.args.size())
    throw TemplateRuntimeError(std::string(method) + "() missing required argument " + std::to_string(i + 1),
                               a.line);
  return a.args[i];
}

const std::string& str_arg(CallArgs& a, size_t i, std::string_view method) {
  const Value& v = arg(a, i, method);
  if (!v.is_string())
    throw TemplateRuntimeError(std::string(method) + "() argument must be str, not " + std::string(v.type_name()),
                               a.line);
  return v.str();
}

int64_t int_arg(CallArgs& a, size_t i, int64_t dflt) {
  if (i >= a.args.size() || a.args[i].is_none()) return dflt;
  return a.args[i].to_int();
}

bool all_cp(std::string_view s, bool (*pred)(char)) {
  if (s.empty()) return false;
  for (char c : s)
    if (!pred(c)) return false;
  return true;
}

// One replacement field's format spec: [[fill]align][sign][#][0][width][,][.precision][type].
std::string apply_format_spec(Renderer& r, const Value& v, std::string_view spec) {
  if (spec.empty()) return v.to_str();
  size_t i = 0;
  char fill = ' ', align = 0, sign = '-', type = 0;
  auto is_align = [](char c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  if (spec.size() >= 2 && is_align(spec[1])) {
    fill = spec[0];
    align = spec[1];
    i = 2;
  } else if (is_align(spec[0])) {
    align = spec[0];
    i = 1;
  }
  if (i < spec.size() && (spec[i] == '+' || spec[i] == '-' || spec[i] == ' ')) sign = spec[i++];
  if (i < spec.size() && spec[i] == '#') ++i;
  if (i < spec.size() && spec[i] == '0') {
    if (!align) {
      fill = '0';
      align = '=';
    }
    ++i;
  }
  size_t width = 0;
  while (i < spec.size() && spec[i] >= '0' && spec[i] <= '9')
    width = std::min<size_t>(width * 10 + static_cast<size_t>(spec[i++] - '0'), size_t{1} << 40);
  r.check_size(width);
  char group = 0;
  if (i < spec.size() && (spec[i] == ',' || spec[i] == '_')) group = spec[i++];
  int precision = -1;
  if (i < spec.size() && spec[i] == '.') {
    precision = 0;
    ++i;
    while (i < spec.size() && spec[i] >= '0' && spec[i] <= '9') precision = precision * 10 + (spec[i++] - '0');
  }
  if (i < spec.size()) type = spec[i++];
  if (i != spec.size()) throw TemplateRuntimeError("Invalid format specifier", r.line());
  bool numeric = v.is_number() && !v.is_bool() ? true : v.is_bool() && type != 0 && type != 's';
  std::string body, prefix;
  if (numeric) {
    double x = v.to_double();
    bool negative = v.is_float() ? std::signbit(x) : v.to_int() < 0;
    char buf[512];
    if (type == 'd' || type == 'x' || type == 'X' || type == 'o' || type == 'b' || (type == 0 && !v.is_float())) {
      if (v.is_float()) throw TemplateRuntimeError("Unknown format code 'd' for object of type 'float'", r.line());
      unsigned long long mag = negative ? 0ULL - static_cast<unsigned long long>(v.to_int())
                                        : static_cast<unsigned long long>(v.to_int());
      if (type == 'b') {
        do {
          body.insert(body.begin(), static_cast<char>('0' + (mag & 1)));
          mag >>= 1;
        } while (mag);
      } else {
        std::snprintf(buf, sizeof(buf), type == 'x' ? "%llx" : type == 'X' ? "%llX" : type == 'o' ? "%llo" : "%llu", mag);
        body = buf;
      }
    } else if (type == 0 && precision < 0) {
      append_float_repr(body, std::fabs(x));
    } else {
      char t = type == 0 ? 'g' : type == '%' ? 'f' : type;
      if (t != 'f' && t != 'F' && t != 'e' && t != 'E' && t != 'g' && t != 'G')
        throw TemplateRuntimeError(std::string("Unknown format code '") + type + "' for object of type '" +
                                       std::string(v.type_name()) + "'",
                                   r.line());
      std::snprintf(buf, sizeof(buf), (std::string("%.*") + t).c_str(), precision < 0 ? 6 : precision,
                    std::fabs(type == '%' ? x * 100 : x));
      body = buf;
      if (type == '%') body += '%';
    }
    if (group && (type == 0 || type == 'd' || type == 'f' || type == 'F')) {
      size_t int_end = body.find_first_not_of("0123456789");
      if (int_end == std::string::npos) int_end = body.size();
      for (size_t k = int_end; k > 3; k -= 3) body.insert(k - 3, 1, group);
    }
    if (negative) {
      prefix.push_back('-');
    } else if (sign == '+' || sign == ' ') {
      prefix.push_back(sign);
    }
    if (!align) align = '>';
  } else {
    if (type != 0 && type != 's')
      throw TemplateRuntimeError(std::string("Unknown format code '") + type + "' for object of type '" +
                                     std::string(v.type_name()) + "'",
                                 r.line());
    body = v.to_str();
    if (precision >= 0) {
      std::vector<std::string> cps = split_code_points(body);
      if (cps.size() > static_cast<size_t>(precision)) {
        body.clear();
        for (int k = 0; k < precision; ++k) body += cps[static_cast<size_t>(k)];
      }
    }
    if (!align) align = '<';
  }
  size_t len = utf8_length(prefix) + utf8_length(body);
  if (len >= width) return prefix + body;
  size_t pad = width - len;
  std::string fill_s(1, fill);
  auto repeat = [&](size_t n) {
    std::string out;
    for (size_t k = 0; k < n; ++k) out += fill_s;
    return out;
  };
  switch (align) {
    case '<': return prefix + body + repeat(pad);
    case '^': return repeat(pad / 2) + prefix + body + repeat(pad - pad / 2);
    case '=': return prefix + repeat(pad) + body;
    default: return repeat(pad) + prefix + body;
  }
}

// str.format with {} / {0} / {name} fields (attribute / index access not supported).
std::string py_format(Renderer& r, std::string_view fmt, CallArgs& a) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '{') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
        out += '{';
        ++i;
        continue;
      }
      size_t close = fmt.find('}', i);
      if (close == std::string_view::npos) throw TemplateRuntimeError("Single '{' encountered in format string", r.line());
      std::string_view field = fmt.substr(i + 1, close - i - 1);
      size_t colon = field.find(':');
      std::string_view name = field.substr(0, colon);
      const Value* v = nullptr;
      if (name.empty()) {
        if (auto_index >= a.args.size()) throw TemplateRuntimeError("Replacement index out of range", r.line());
        v = &a.args[auto_index++];
      } else if (std::all_of(name.begin(), name.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
        size_t idx = static_cast<size_t>(std::stoul(std::string(name)));
        if (idx >= a.args.size()) throw TemplateRuntimeError("Replacement index out of range", r.line());
        v = &a.args[idx];
      } else {
        v = a.get(name);
        if (!v) throw TemplateRuntimeError("'" + std::string(name) + "'", r.line());
      }
      if (colon == std::string_view::npos) {
        v->append_str(out);
      } else {
        out += apply_format_spec(r, *v, field.substr(colon + 1));
      }
      i = close;
    } else if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') ++i;
      out += '}';
    } else {
      out += c;
    }
  }
  return out;
}

Value str_method(Renderer& r, const std::string& s, std::string_view name, CallArgs& a) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const Value* chars = a.args.empty() ? nullptr : &a.args[0];
    return Value::string(py_strip(s, chars, name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    const Value* sep = a.get("sep", 0);
    const Value* maxv = a.get("maxsplit", 1);
    return Value::list(py_split(s, sep, maxv ? maxv->to_int() : -1, name == "rsplit"));
  }
  if (name == "splitlines") {
    std::vector<Value> out;
    const Value* keep = a.get("keepends", 0);
    size_t start = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\n' || s[i] == '\r') {
        size_t end = i;
        if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
        out.push_back(Value::string(s.substr(start, (keep && keep->truthy() ? i + 1 : end) - start)));
        start = i + 1;
      }
    }
    if (start < s.size()) out.push_back(Value::string(s.substr(start)));
    return Value::list(std::move(out));
  }
  if (name == "startswith" || name == "endswith") {
    const Value& p = arg(a, 0, name);
    std::vector<Value> options = p.is_list() ? p.items() : std::vector<Value>{p};
    std::string_view view(s);
    if (a.args.size() > 1) {
      std::vector<std::string> cps = split_code_points(s);
      int64_t n = static_cast<int64_t>(cps.size());
      int64_t b = int_arg(a, 1, 0), e = int_arg(a, 2, n);
      if (b < 0) b = std::max<int64_t>(0, b + n);
      if (e < 0) e = std::max<int64_t>(0, e + n);
      b = std::min(b, n);
      e = std::min(e, n);
      std::string sub;
      for (int64_t i = b; i < e; ++i) sub += cps[static_cast<size_t>(i)];
      Value subv = Value::string(sub);
      CallArgs a2;
      a2.line = a.line;
      a2.args.push_back(p);
      return str_method(r, subv.str(), name, a2);
    }
    for (const Value& o : options) {
      if (!o.is_string())
        throw TemplateRuntimeError(std::string(name) + " first arg must be str or a tuple of str, not " +
                                       std::string(o.type_name()),
                                   a.line);
      const std::string& x = o.str();
      if (name == "startswith" ? view.substr(0, x.size()) == x
                               : (view.size() >= x.size() && view.substr(view.size() - x.size()) == x))
        return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  if (name == "replace") {
    const Value* count = a.get("count", 2);
    return Value::string(py_replace(s, str_arg(a, 0, name), str_arg(a, 1, name), count ? count->to_int() : -1,
                                    r.limits().max_output_bytes, a.line));
  }
  if (name == "upper") return Value::string(py_upper(s));
  if (name == "lower" || name == "casefold") return Value::string(py_lower(s));
  if (name == "title") return Value::string(py_title(s));
  if (name == "capitalize") return Value::string(py_capitalize(s));
  if (name == "swapcase") {
    std::string out = s;
    for (char& c : out) c = std::isupper(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c))
                                                                       : static_cast<char>(std::toupper(c));
    return Value::string(out);
  }
  if (name == "format") return Value::string(py_format(r, s, a));
  if (name == "join") {
    std::string out;
    bool first = true;
    for (const Value& v : r.iterate(arg(a, 0, name))) {
      if (!v.is_string())
        throw TemplateRuntimeError("sequence item: expected str instance, " + std::string(v.type_name()) + " found",
                                   a.line);
      if (!first) out += s;
      first = false;
      out += v.str();
    }
    return Value::string(std::move(out));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    const std::string& x = str_arg(a, 0, name);
    if (name == "count") {
      if (x.empty()) return Value::integer(static_cast<int64_t>(utf8_length(s)) + 1);
      int64_t n = 0;
      for (size_t p = s.find(x); p != std::string::npos; p = s.find(x, p + x.size())) ++n;
      return Value::integer(n);
    }
    size_t p = (name == "find" || name == "index") ? s.find(x) : s.rfind(x);
    if (p == std::string::npos) {
      if (name == "index" || name == "rindex") throw TemplateRuntimeError("substring not found", a.line);
      return Value::integer(-1);
    }
    return Value::integer(static_cast<int64_t>(utf8_length(std::string_view(s).substr(0, p))));
  }
  if (name == "isdigit" || name == "isnumeric" || name == "isdecimal")
    return Value::boolean(all_cp(s, [](char c) { return c >= '0' && c <= '9'; }));
  if (name == "isalpha")
    return Value::boolean(all_cp(s, [](char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0 || (c & 0x80); }));
  if (name == "isalnum")
    return Value::boolean(all_cp(s, [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || (c & 0x80); }));
  if (name == "isspace")
    return Value::boolean(all_cp(s, [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }));
  if (name == "isupper" || name == "islower") {
    bool any = false;
    for (char c : s) {
      if (std::islower(static_cast<unsigned char>(c))) {
        if (name == "isupper") return Value::boolean(false);
        any = true;
      } else if (std::isupper(static_cast<unsigned char>(c))) {
        if (name == "islower") return Value::boolean(false);
        any = true;
      }
    }
    return Value::boolean(any);
  }
  if (name == "istitle") return Value::boolean(!s.empty() && py_title(s) == s);
  if (name == "removeprefix") {
    const std::string& x = str_arg(a, 0, name);
    return Value::string(s.compare(0, x.size(), x) == 0 ? s.substr(x.size()) : s);
  }
  if (name == "removesuffix") {
    const std::string& x = str_arg(a, 0, name);
    return Value::string(!x.empty() && s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0
                             ? s.substr(0, s.size() - x.size())
                             : s);
  }
  if (name == "center" || name == "ljust" || name == "rjust" || name == "zfill") {
    int64_t width = int_arg(a, 0, 0);
    r.check_size(static_cast<size_t>(std::max<int64_t>(0, width)));
    std::string fill = name == "zfill" ? "0" : (a.args.size() > 1 ? a.args[1].str() : " ");
    int64_t len = static_cast<int64_t>(utf8_length(s));
    if (width <= len) return Value::string(s);
    int64_t pad = width - len;
    int64_t left = name == "center" ? pad / 2 + (pad & width & 1) : name == "ljust" ? 0 : pad;
    std::string out;
    for (int64_t i = 0; i < left; ++i) out += fill;
    if (name == "zfill" && !s.empty() && (s[0] == '-' || s[0] == '+')) {
      out = s.substr(0, 1) + out + s.substr(1);
    } else {
      out += s;
    }
    for (int64_t i = 0; i < pad - left; ++i) out += fill;
    return Value::string(out);
  }
  if (name == "partition" || name == "rpartition") {
    const std::string& x = str_arg(a, 0, name);
    size_t p = name == "partition" ? s.find(x) : s.rfind(x);
    if (p == std::string::npos)
      return name == "partition"
                 ? Value::list({Value::string(s), Value::string(""), Value::string("")}, ListFlavor::Tuple)
                 : Value::list({Value::string(""), Value::string(""), Value::string(s)}, ListFlavor::Tuple);
    return Value::list({Value::string(s.substr(0, p)), Value::string(x), Value::string(s.substr(p + x.size()))},
                       ListFlavor::Tuple);
  }
  throw TemplateRuntimeError("'str' object has no attribute '" + std::string(name) + "'", a.line);
}

}  // namespace

MethodKind find_method(const Value& obj, std::string_view name) {
  switch (obj.kind()) {
    case ValueKind::String: return in(kStrMethods, name) ? MethodKind::Safe : MethodKind::None;
    case ValueKind::List:
      if (obj.flavor() == ListFlavor::Generator) return MethodKind::None;
      if (in(kListMethods, name)) return MethodKind::Safe;
      if (obj.flavor() == ListFlavor::List && in(kListUnsafe, name)) return MethodKind::Unsafe;
      return MethodKind::None;
    case ValueKind::Dict:
      if (in(kDictMethods, name)) return MethodKind::Safe;
      if (in(kDictUnsafe, name)) return MethodKind::Unsafe;
      return MethodKind::None;
    default: return MethodKind::None;
  }
}

namespace {

// Markup methods escape their string arguments and return Markup (markupsafe).
constexpr std::string_view kMarkupPreserving[] = {
    "strip", "lstrip", "rstrip", "upper", "lower", "title", "capitalize", "replace", "center", "ljust", "rjust",
    "zfill", "swapcase", "expandtabs", "format", "join", "casefold", "removeprefix", "removesuffix"};
constexpr std::string_view kMarkupSplitting[] = {"split", "rsplit", "splitlines", "partition", "rpartition"};

Value markup_method(Renderer& r, const Value& obj, std::string_view name, CallArgs& a) {
  bool preserving = in(kMarkupPreserving, name);
  bool splitting = in(kMarkupSplitting, name);
  if (preserving) {
    auto escape = [](Value& v) {
      if (v.is_string() && !v.is_markup()) v = Value::markup(html_escape(v.str()));
    };
    for (Value& v : a.args) escape(v);
    for (auto& kv : a.kwargs) escape(kv.second);
    if (name == "join" && !a.args.empty()) {
      std::vector<Value> items = r.iterate(a.args[0]);
      for (Value& v : items) escape(v);
      a.args[0] = Value::list(std::move(items));
    }
  }
  Value result = str_method(r, obj.str(), name, a);
  if (preserving && result.is_string()) return Value::markup(result.str());
  if (splitting && result.is_list()) {
    std::vector<Value> items = result.items();
    for (Value& v : items) v = Value::markup(v.str());
    return Value::list(std::move(items), result.flavor());
  }
  return result;
}

}  // namespace

Value call_method(Renderer& r, const Value& obj, std::string_view name, CallArgs& a) {
  if (obj.is_markup()) return markup_method(r, obj, name, a);
  if (obj.is_string()) return str_method(r, obj.str(), name, a);
  if (obj.is_list()) {
    const auto& items = obj.items();
    if (name == "copy") return Value::list(items);
    const Value& x = arg(a, 0, name);
    if (name == "count") {
      int64_t n = 0;
      for (const Value& v : items) n += values_equal(v, x);
      return Value::integer(n);
    }
    for (size_t i = 0; i < items.size(); ++i)
      if (values_equal(items[i], x)) return Value::integer(static_cast<int64_t>(i));
    throw TemplateRuntimeError(x.to_str() + " is not in list", a.line);
  }
  if (obj.is_dict()) {
    const DictObject& d = obj.dict_ref();
    if (name == "get") {
      const Value* v = d.find(arg(a, 0, name));
      if (v) return *v;
      return a.args.size() > 1 ? a.args[1] : Value::none();
    }
    if (name == "copy") return Value::dict(d.items);
    std::vector<Value> out;
    out.reserve(d.items.size());
    for (const auto& [k, v] : d.items) {
      if (name == "keys") {
        out.push_back(k);
      } else if (name == "values") {
        out.push_back(v);
      } else {
        out.push_back(Value::list({k, v}, ListFlavor::Tuple));
      }
    }
    return Value::list(std::move(out));
  }
  throw TemplateRuntimeError("'" + std::string(obj.type_name()) + "' object has no attribute '" +
                                 std::string(name) + "'",
                             a.line);
}

}  // namespace lmx::chat
