// Python str semantics on UTF-8 text: strip, split, case mapping, replace, %-format.
#include <cstdio>
#include <cstdlib>

#include "lmx/chat/lexer.h"
#include "lmx/chat/renderer.h"

namespace lmx::chat {

namespace {

size_t cp_len(unsigned char c) { return c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1; }

uint32_t decode(std::string_view s, size_t i, size_t* len) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n = cp_len(c);
  if (i + n > s.size()) n = 1;
  *len = n;
  if (n == 1) return c;
  uint32_t cp = c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return cp;
}


bool is_py_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

// Case mapping for ASCII and Latin-1 letters; other code points are left as they are.
bool is_lower_cp(uint32_t cp) { return (cp >= 'a' && cp <= 'z') || (cp >= 0xDF && cp <= 0xFF && cp != 0xF7); }
bool is_upper_cp(uint32_t cp) { return (cp >= 'A' && cp <= 'Z') || (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7); }
bool is_cased(uint32_t cp) { return is_lower_cp(cp) || is_upper_cp(cp); }
uint32_t to_upper_cp(uint32_t cp) {
  if (cp >= 'a' && cp <= 'z') return cp - 32;
  if (cp >= 0xE0 && cp <= 0xFE && cp != 0xF7) return cp - 32;
  return cp;
}
uint32_t to_lower_cp(uint32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp + 32;
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 32;
  return cp;
}

template <typename F>
std::string map_code_points(std::string_view s, F f) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += static_cast<char>(f(c));
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp = decode(s, i, &len);
    detail::append_utf8(out, f(cp));
    i += len;
  }
  return out;
}

}  // namespace

std::vector<std::string> split_code_points(std::string_view s) {
  std::vector<std::string> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t n = cp_len(static_cast<unsigned char>(s[i]));
    if (i + n > s.size()) n = 1;
    out.emplace_back(s.substr(i, n));
    i += n;
  }
  return out;
}

std::string py_strip(std::string_view s, const Value* chars, bool left, bool right) {
  bool ws = !chars || chars->is_none() || chars->is_undefined();
  std::vector<uint32_t> set;
  if (!ws) {
    const std::string& c = chars->str();
    for (size_t i = 0; i < c.size();) {
      size_t len;
      set.push_back(decode(c, i, &len));
      i += len;
    }
  }
  auto strip_cp = [&](uint32_t cp) {
    if (ws) return is_py_space(cp);
    for (uint32_t x : set)
      if (x == cp) return true;
    return false;
  };
  size_t b = 0, e = s.size();
  if (left) {
    while (b < e) {
      size_t len;
      uint32_t cp = decode(s, b, &len);
      if (!strip_cp(cp)) break;
      b += len;
    }
  }
  if (right) {
    while (e > b) {
      size_t start = e - 1;
      while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
      size_t len;
      uint32_t cp = decode(s, start, &len);
      if (!strip_cp(cp)) break;
      e = start;
    }
  }
  return std::string(s.substr(b, e - b));
}

std::string py_upper(std::string_view s) { return map_code_points(s, to_upper_cp); }
std::string py_lower(std::string_view s) { return map_code_points(s, to_lower_cp); }

std::string py_title(std::string_view s) {
  bool prev_cased = false;
  return map_code_points(s, [&](uint32_t cp) {
    uint32_t r = prev_cased ? to_lower_cp(cp) : to_upper_cp(cp);
    prev_cased = is_cased(cp);
    return r;
  });
}

std::string py_capitalize(std::string_view s) {
  bool first = true;
  return map_code_points(s, [&](uint32_t cp) {
    uint32_t r = first ? to_upper_cp(cp) : to_lower_cp(cp);
    first = false;
    return r;
  });
}

std::string py_replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count,
                       size_t max_bytes, int line) {
  std::string out;
  auto check = [&] {
    if (out.size() > max_bytes)
      throw TemplateLimitError("output exceeds " + std::to_string(max_bytes) + " bytes", line);
  };
  if (old.empty()) {
    std::vector<std::string> cps = split_code_points(s);
    int64_t done = 0;
    for (const auto& cp : cps) {
      if (count < 0 || done < count) {
        out += repl;
        ++done;
      }
      out += cp;
      check();
    }
    if (count < 0 || done < count) out += repl;
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t hit = s.find(old, pos);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(pos, hit - pos));
    out.append(repl);
    pos = hit + old.size();
    ++done;
    check();
  }
  out.append(s.substr(pos));
  return out;
}

std::vector<Value> py_split(std::string_view s, const Value* sep, int64_t maxsplit, bool from_right) {
  std::vector<Value> out;
  if (!sep || sep->is_none()) {
    // Runs of whitespace separate; leading/trailing whitespace is ignored.
    std::vector<std::pair<size_t, size_t>> words;
    size_t i = 0;
    while (i < s.size()) {
      size_t len;
      while (i < s.size() && is_py_space(decode(s, i, &len))) i += len;
      if (i >= s.size()) break;
      size_t start = i;
      while (i < s.size() && !is_py_space(decode(s, i, &len))) i += len;
      words.emplace_back(start, i);
    }
    if (maxsplit < 0 || static_cast<int64_t>(words.size()) <= maxsplit + 1) {
      for (auto [a, b] : words) out.push_back(Value::string(std::string(s.substr(a, b - a))));
      return out;
    }
    if (!from_right) {
      for (int64_t k = 0; k < maxsplit; ++k)
        out.push_back(Value::string(std::string(s.substr(words[k].first, words[k].second - words[k].first))));
      std::string rest = py_strip(s.substr(words[static_cast<size_t>(maxsplit)].first), nullptr, false, true);
      out.push_back(Value::string(rest));
    } else {
      size_t keep = words.size() - static_cast<size_t>(maxsplit);
      out.push_back(Value::string(py_strip(s.substr(0, words[keep - 1].second), nullptr, true, false)));
      for (size_t k = keep; k < words.size(); ++k)
        out.push_back(Value::string(std::string(s.substr(words[k].first, words[k].second - words[k].first))));
    }
    return out;
  }
  const std::string& d = sep->str();
  if (d.empty()) throw TemplateRuntimeError("empty separator", 0);
  std::vector<std::string> parts;
  if (!from_right) {
    size_t pos = 0;
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      size_t hit = s.find(d, pos);
      if (hit == std::string_view::npos) break;
      parts.emplace_back(s.substr(pos, hit - pos));
      pos = hit + d.size();
    }
    parts.emplace_back(s.substr(pos));
  } else {
    size_t end = s.size();
    std::vector<std::string> rev;
    while (maxsplit < 0 || static_cast<int64_t>(rev.size()) < maxsplit) {
      if (end < d.size()) break;
      size_t hit = s.rfind(d, end - d.size());
      if (hit == std::string_view::npos) break;
      rev.emplace_back(s.substr(hit + d.size(), end - hit - d.size()));
      end = hit;
    }
    rev.emplace_back(s.substr(0, end));
    parts.assign(rev.rbegin(), rev.rend());
  }
  for (auto& p : parts) out.push_back(Value::string(std::move(p)));
  return out;
}

std::string py_percent_format(Renderer& r, std::string_view fmt, const Value& args) {
  std::vector<Value> list;
  if (args.is_list() && args.flavor() == ListFlavor::Tuple) {
    list = args.items();
  } else {
    list.push_back(args);
  }
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) throw TemplateRuntimeError("incomplete format", r.line());
    if (fmt[i] == '%') {
      out += '%';
      continue;
    }
    std::string spec = "%";
    while (i < fmt.size() && std::string_view("-+ #0123456789.").find(fmt[i]) != std::string_view::npos)
      spec += fmt[i++];
    if (i >= fmt.size()) throw TemplateRuntimeError("incomplete format", r.line());
    char conv = fmt[i];
    if (next >= list.size()) throw TemplateRuntimeError("not enough arguments for format string", r.line());
    const Value& v = list[next++];
    char buf[128];
    switch (conv) {
      case 's':
      case 'r': {
        std::string text;
        if (conv == 's') {
          text = v.to_str();
        } else {
          v.append_repr(text);
        }
        // Width and '-' apply to strings too ('%5s', '%-5s'); precision truncates.
        bool left = spec.find('-') != std::string::npos;
        size_t dot = spec.find('.');
        std::string digits = spec.substr(1, dot == std::string::npos ? std::string::npos : dot - 1);
        std::string width_digits;
        for (char ch : digits)
          if (ch >= '0' && ch <= '9') width_digits += ch;
        if (dot != std::string::npos) {
          size_t prec = static_cast<size_t>(std::atoi(spec.c_str() + dot + 1));
          std::vector<std::string> cps = split_code_points(text);
          if (cps.size() > prec) {
            text.clear();
            for (size_t k = 0; k < prec; ++k) text += cps[k];
          }
        }
        size_t width = width_digits.size() > 9 ? SIZE_MAX
                       : width_digits.empty()    ? 0
                                                 : static_cast<size_t>(std::atoi(width_digits.c_str()));
        r.check_size(width);
        size_t len = utf8_length(text);
        if (len < width && !left) out.append(width - len, ' ');
        out += text;
        if (len < width && left) out.append(width - len, ' ');
        break;
      }
      case 'd':
      case 'i':
        if (!v.is_number()) throw TemplateRuntimeError("%d format: a real number is required", r.line());
        std::snprintf(buf, sizeof(buf), (spec + "lld").c_str(), static_cast<long long>(v.to_int()));
        out += buf;
        break;
      case 'f':
      case 'e':
      case 'g':
        if (!v.is_number()) throw TemplateRuntimeError("must be real number", r.line());
        std::snprintf(buf, sizeof(buf), (spec + conv).c_str(), v.to_double());
        out += buf;
        break;
      case 'x':
        std::snprintf(buf, sizeof(buf), (spec + "llx").c_str(), static_cast<long long>(v.to_int()));
        out += buf;
        break;
      default: throw TemplateRuntimeError(std::string("unsupported format character '") + conv + "'", r.line());
    }
  }
  if (next < list.size() && args.is_list() && args.flavor() == ListFlavor::Tuple)
    throw TemplateRuntimeError("not all arguments converted during string formatting", r.line());
  return out;
}

}  // namespace lmx::chat
