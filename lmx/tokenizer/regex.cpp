#define PCRE2_CODE_UNIT_WIDTH 8
#include "lmx/tokenizer/regex.h"

#include <pcre2.h>

#include "lmx/base/error.h"

namespace lmx::tokenizer::detail {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Impl() {
    if (code) pcre2_code_free(code);
  }
};

namespace {
// One match-data block per thread and pattern size, reused across calls.
struct MatchData {
  pcre2_match_data* data = nullptr;
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* context = nullptr;
  MatchData() {
    data = pcre2_match_data_create(32, nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    context = pcre2_match_context_create(nullptr);
    pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~MatchData() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(data);
  }
};
MatchData& thread_match_data() {
  thread_local MatchData md;
  return md;
}
}  // namespace

Regex::Regex(std::string_view pattern, std::string_view what)
    : impl_(std::make_unique<Impl>()), pattern_(pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error, &offset, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(error, buffer, sizeof(buffer));
    throw FormatError(std::string(what) + ": invalid regex at offset " + std::to_string(offset) +
                      ": " + reinterpret_cast<const char*>(buffer));
  }
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() = default;

void Regex::find_all(std::string_view text,
                     const std::function<void(size_t, size_t)>& on_match) const {
  MatchData& md = thread_match_data();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos <= text.size()) {
    int rc = impl_->jit
                 ? pcre2_jit_match(impl_->code, subject, text.size(), pos, 0, md.data, md.context)
                 : pcre2_match(impl_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md.data,
                               md.context);
    if (rc == PCRE2_ERROR_NOMATCH) return;
    if (rc < 0) {
      PCRE2_UCHAR buffer[256];
      pcre2_get_error_message(rc, buffer, sizeof(buffer));
      throw Error("regex match failed for /" + pattern_ +
                  "/: " + reinterpret_cast<const char*>(buffer));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.data);
    size_t start = ov[0], end = ov[1];
    if (end > start) {
      on_match(start, end);
      pos = end;
    } else {
      // Empty match: step one whole character forward.
      if (start >= text.size()) return;
      size_t step = 1;
      auto b = static_cast<unsigned char>(text[start]);
      if (b >= 0xC0) step = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
      pos = start + step;
    }
  }
}

}  // namespace lmx::tokenizer::detail

namespace lmx::tokenizer::detail {

Pattern Pattern::literal(std::string text) {
  Pattern p;
  p.literal_ = std::move(text);
  return p;
}

Pattern Pattern::regex(std::string_view pattern, std::string_view what) {
  Pattern p;
  p.regex_ = std::make_shared<const Regex>(pattern, what);
  return p;
}

void Pattern::find_all(std::string_view text,
                       const std::function<void(size_t, size_t)>& on_match) const {
  if (regex_) {
    regex_->find_all(text, on_match);
    return;
  }
  if (literal_.empty()) return;
  size_t pos = 0;
  while (true) {
    size_t at = text.find(literal_, pos);
    if (at == std::string_view::npos) return;
    on_match(at, at + literal_.size());
    pos = at + literal_.size();
  }
}

std::string Pattern::replace_all(std::string_view text, std::string_view content) const {
  std::string out;
  out.reserve(text.size());
  size_t last = 0;
  find_all(text, [&](size_t start, size_t end) {
    out.append(text.substr(last, start - last));
    out.append(content);
    last = end;
  });
  out.append(text.substr(last));
  return out;
}

}  // namespace lmx::tokenizer::detail
