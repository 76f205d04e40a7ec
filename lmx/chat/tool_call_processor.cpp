#include "lmx/chat/tool_call_processor.h"

#include <algorithm>

#include "lmx/chat/harmony_stream_adapter.h"
#include "lmx/chat/marker_scan.h"
#include "lmx/chat/tool_call_region.h"

namespace lmx::chat {

namespace {

enum class Role { kCallStart, kReasoningOpen, kReasoningClose, kMarkup };

struct Marker {
  std::string text;
  Role role;
  bool line_start_only = false;  // see ToolCallParser::starts_only_a_line
};

std::vector<std::string> texts_of(const std::vector<Marker>& markers) {
  std::vector<std::string> out;
  for (const auto& m : markers) out.push_back(m.text);
  return out;
}

std::vector<Marker> with_role(const std::vector<std::string>& texts, Role role) {
  std::vector<Marker> out;
  for (const auto& t : texts) out.push_back({t, role});
  return out;
}

}  // namespace

struct ToolCallProcessor::State {
  enum class Mode { kText, kReasoning, kCall };

  std::unique_ptr<ToolCallParser> parser;
  std::unique_ptr<HarmonyStreamAdapter> harmony;  // gpt_oss: Harmony frames, not markers
  ToolCallProcessorOptions options;
  std::vector<Marker> text_markers;       // call starts, reasoning opens, markup
  std::vector<Marker> reasoning_markers;  // reasoning closes
  std::vector<std::string> text_texts, reasoning_texts;  // their texts, for marker_scan
  Mode mode = Mode::kText;
  std::string buffer;       // input not yet reported; in kCall it starts with the region
  std::string pending_raw;  // a reasoning-open marker not yet carried by an event
  std::unique_ptr<RegionScanner> scanner;
  size_t call_marker_size = 0;  // the start marker of the open region
  bool line_start = true;       // the buffer begins a line (line_start_at)
  size_t next_id = 0;
  bool finished = false;
  std::vector<ToolStreamEvent> out;

  void emit(ToolStreamEvent::Kind kind, std::string_view text, std::string raw) {
    bool plain = kind == ToolStreamEvent::Kind::kText && text == raw;
    if (plain && !out.empty() && out.back().kind == kind && out.back().text == out.back().raw) {
      out.back().text += text;  // merge plain text of one feed
      out.back().raw += text;
      return;
    }
    ToolStreamEvent e;
    e.kind = kind;
    e.text = std::string(text);
    e.raw = std::move(raw);
    out.push_back(std::move(e));
  }

  void reject(std::string_view region, std::string error) {
    out.push_back(detail::rejected_event(region, std::move(error)));
  }

  void handle_region(std::string_view region) {
    for (auto& e : detail::region_events(*parser, region, options.tools, next_id)) {
      if (e.kind == ToolStreamEvent::Kind::kText) {
        emit(e.kind, e.text, std::move(e.raw));  // merged with the text around it
      } else {
        out.push_back(std::move(e));
      }
    }
  }

  // Whether buffer[pos] starts a line: only blanks since the last newline (or the start
  // of the stream).
  bool line_start_at(size_t pos) const {
    while (pos > 0 && (buffer[pos - 1] == ' ' || buffer[pos - 1] == '\t')) --pos;
    return pos == 0 ? line_start : buffer[pos - 1] == '\n';
  }

  // Text or reasoning: reports up to the next marker (or what cannot start one).
  // Returns the bytes consumed and the marker hit, if any.
  std::pair<size_t, const Marker*> scan_markers(std::string_view s,
                                                size_t base,
                                                const std::vector<Marker>& markers,
                                                const std::vector<std::string>& texts,
                                                bool eos,
                                                ToolStreamEvent::Kind kind) {
    const Marker* marker = nullptr;  // the first marker that counts here, at `pos`
    size_t pos = std::string_view::npos;
    for (size_t from = 0; from < s.size() && !marker;) {
      detail::MarkerHit hit = detail::find_first_marker(s.substr(from), texts);
      if (hit.pos == std::string_view::npos) break;
      pos = from + hit.pos;
      if (!markers[hit.index].line_start_only || line_start_at(base + pos))
        marker = &markers[hit.index];
      from = pos + 1;
    }
    size_t hold_start = eos ? s.size() : s.size() - detail::partial_marker_suffix(s, texts);
    bool hit = marker && pos < hold_start;
    size_t text_end = hit ? pos : hold_start;
    std::string_view text = s.substr(0, text_end);
    if (kind == ToolStreamEvent::Kind::kText) {
      if (!text.empty()) emit(kind, text, std::string(text));
    } else {
      if (!text.empty() || hit || (eos && !pending_raw.empty())) {
        std::string raw = pending_raw + std::string(text) + (hit ? marker->text : "");
        emit(kind, text, std::move(raw));
        pending_raw.clear();
      }
    }
    if (hit) return {pos + marker->text.size(), marker};
    return {text_end, nullptr};
  }

  // Consumes as much of `buffer` as can be decided now.
  void run(bool eos) {
    size_t start = 0;
    while (true) {
      std::string_view rest = std::string_view(buffer).substr(start);
      if (mode == Mode::kCall) {
        std::optional<size_t> end = scanner->end(rest);
        if (end == RegionScanner::kNotACall) {
          std::string_view marker = rest.substr(0, call_marker_size);
          emit(ToolStreamEvent::Kind::kText, marker, std::string(marker));
          start += call_marker_size;
          mode = Mode::kText;
          scanner.reset();
          continue;
        }
        if (end) {
          handle_region(rest.substr(0, *end));
          start += *end;
          mode = Mode::kText;
          scanner.reset();
          continue;
        }
        if (rest.size() > options.max_call_bytes) {
          reject(rest, "tool call longer than " + std::to_string(options.max_call_bytes) + " bytes without an end");
        } else if (!eos) {
          break;
        } else if (scanner->complete_at_end_of_stream()) {
          handle_region(rest);
        } else {
          reject(rest, "unterminated tool call: the stream ended inside it");
        }
        start = buffer.size();
        mode = Mode::kText;
        scanner.reset();
        continue;
      }
      if (rest.empty() && !(eos && !pending_raw.empty())) break;
      if (mode == Mode::kReasoning) {
        auto [used, marker] = scan_markers(rest, start, reasoning_markers, reasoning_texts, eos,
                                           ToolStreamEvent::Kind::kReasoning);
        start += used;
        if (!marker) break;
        mode = Mode::kText;
        continue;
      }
      auto [used, marker] =
          scan_markers(rest, start, text_markers, text_texts, eos, ToolStreamEvent::Kind::kText);
      if (!marker) {
        start += used;
        break;
      }
      if (marker->role == Role::kCallStart) {
        start += used - marker->text.size();  // the region starts with its marker
        mode = Mode::kCall;
        call_marker_size = marker->text.size();
        scanner = parser->scanner(marker->text);
      } else if (marker->role == Role::kReasoningOpen) {
        start += used;
        pending_raw = marker->text;
        mode = Mode::kReasoning;
      } else {
        start += used;
        emit(ToolStreamEvent::Kind::kText, "", marker->text);
      }
    }
    line_start = line_start_at(start);
    buffer.erase(0, start);
  }

  std::vector<ToolStreamEvent> take() {
    std::vector<ToolStreamEvent> events;
    events.swap(out);
    return events;
  }
};

ToolCallProcessor::ToolCallProcessor(ToolCallFormat format, ToolCallProcessorOptions options)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.parser = make_tool_call_parser(format);
  if (format == ToolCallFormat::kGptOss)
    s.harmony = std::make_unique<HarmonyStreamAdapter>(options);
  s.options = std::move(options);
  std::vector<Marker> starts = with_role(s.parser->start_markers(), Role::kCallStart);
  for (auto& m : starts) m.line_start_only = s.parser->starts_only_a_line(m.text);
  for (auto group : {starts, with_role(s.parser->reasoning_open_markers(), Role::kReasoningOpen),
                     with_role(s.parser->markup_markers(), Role::kMarkup)}) {
    s.text_markers.insert(s.text_markers.end(), group.begin(), group.end());
  }
  s.reasoning_markers = with_role(s.parser->reasoning_close_markers(), Role::kReasoningClose);
  s.text_texts = texts_of(s.text_markers);
  s.reasoning_texts = texts_of(s.reasoning_markers);
  if (s.options.starts_in_reasoning) s.mode = State::Mode::kReasoning;
}

ToolCallProcessor::~ToolCallProcessor() = default;
ToolCallProcessor::ToolCallProcessor(ToolCallProcessor&&) noexcept = default;
ToolCallProcessor& ToolCallProcessor::operator=(ToolCallProcessor&&) noexcept = default;

std::vector<ToolStreamEvent> ToolCallProcessor::feed(std::string_view chunk) {
  if (state_->finished) throw InvalidArgument("ToolCallProcessor::feed after finish()");
  if (state_->harmony) return state_->harmony->feed(chunk);
  state_->buffer.append(chunk);
  state_->run(/*eos=*/false);
  return state_->take();
}

std::vector<ToolStreamEvent> ToolCallProcessor::finish() {
  if (state_->finished) return {};
  state_->finished = true;
  if (state_->harmony) return state_->harmony->finish();
  state_->run(/*eos=*/true);
  return state_->take();
}

ToolCallFormat ToolCallProcessor::format() const { return state_->parser->format(); }

bool ToolCallProcessor::in_tool_call() const {
  return state_->harmony ? state_->harmony->in_tool_call() : state_->mode == State::Mode::kCall;
}

std::vector<ToolStreamEvent> process_tool_calls(ToolCallFormat format,
                                                std::string_view text,
                                                ToolCallProcessorOptions options) {
  ToolCallProcessor p(format, std::move(options));
  std::vector<ToolStreamEvent> events = p.feed(text);
  for (auto& e : p.finish()) events.push_back(std::move(e));
  return events;
}

}  // namespace lmx::chat
