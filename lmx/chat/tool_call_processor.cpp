#include "lmx/chat/tool_call_processor.h"

#include <algorithm>

namespace lmx::chat {

namespace {

enum class Role { kCallStart, kReasoningOpen, kReasoningClose, kMarkup };

struct Marker {
  std::string text;
  Role role;
};

struct Match {
  size_t pos = std::string_view::npos;
  const Marker* marker = nullptr;
};

// The earliest marker in `s` (the longest at that position).
Match find_marker(std::string_view s, const std::vector<Marker>& markers) {
  Match best;
  for (const auto& m : markers) {
    size_t p = s.find(m.text);
    if (p == std::string_view::npos) continue;
    if (p < best.pos || (p == best.pos && m.text.size() > best.marker->text.size())) best = {p, &m};
  }
  return best;
}

// The longest suffix of `s` that is a proper prefix of a marker: it may become one.
size_t partial_marker_suffix(std::string_view s, const std::vector<Marker>& markers) {
  size_t hold = 0;
  for (const auto& m : markers) {
    for (size_t k = std::min(m.text.size() - 1, s.size()); k > hold; --k) {
      if (s.substr(s.size() - k) == std::string_view(m.text).substr(0, k)) {
        hold = k;
        break;
      }
    }
  }
  return hold;
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
  ToolCallProcessorOptions options;
  std::vector<Marker> text_markers;       // call starts, reasoning opens, markup
  std::vector<Marker> reasoning_markers;  // reasoning closes
  Mode mode = Mode::kText;
  std::string buffer;       // input not yet reported; in kCall it starts with the region
  std::string pending_raw;  // a reasoning-open marker not yet carried by an event
  std::unique_ptr<RegionScanner> scanner;
  size_t call_marker_size = 0;  // the start marker of the open region
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
    ToolStreamEvent e;
    e.kind = ToolStreamEvent::Kind::kRejectedToolCall;
    e.text = std::string(region);
    e.raw = std::string(region);
    e.error = std::move(error);
    out.push_back(std::move(e));
  }

  void handle_region(std::string_view region) {
    std::vector<ToolCall> calls;
    try {
      calls = parser->parse(region, ToolSchemas(&options.tools));
    } catch (const NotAToolCall&) {
      return emit(ToolStreamEvent::Kind::kText, region, std::string(region));
    } catch (const Error& e) {
      return reject(region, e.what());
    } catch (const nlohmann::json::exception& e) {
      return reject(region, std::string("tool call: ") + e.what());
    }
    if (calls.empty()) return reject(region, "tool call region holds no call");
    if (!options.tools.empty()) {
      for (const auto& c : calls) {
        bool declared = std::any_of(options.tools.begin(), options.tools.end(),
                                    [&](const ToolSpec& t) { return t.name == c.name; });
        if (!declared) {
          std::string names;
          for (const auto& t : options.tools) names += (names.empty() ? "" : ", ") + t.name;
          return reject(region, "call to undeclared tool '" + c.name + "' (declared: " + names + ")");
        }
      }
    }
    for (size_t i = 0; i < calls.size(); ++i) {
      ToolStreamEvent e;
      e.kind = ToolStreamEvent::Kind::kToolCall;
      e.call = std::move(calls[i]);
      if (e.call.id.empty()) e.call.id = "call_" + std::to_string(next_id++);
      if (i == 0) e.raw = std::string(region);
      out.push_back(std::move(e));
    }
  }

  // Text or reasoning: reports up to the next marker (or what cannot start one).
  // Returns the bytes consumed and the marker hit, if any.
  std::pair<size_t, const Marker*> scan_markers(std::string_view s, const std::vector<Marker>& markers, bool eos,
                                                ToolStreamEvent::Kind kind) {
    Match m = find_marker(s, markers);
    size_t hold_start = eos ? s.size() : s.size() - partial_marker_suffix(s, markers);
    size_t text_end = (m.marker && m.pos < hold_start) ? m.pos : hold_start;
    std::string_view text = s.substr(0, text_end);
    if (kind == ToolStreamEvent::Kind::kText) {
      if (!text.empty()) emit(kind, text, std::string(text));
    } else {
      bool closing = m.marker && m.pos < hold_start;
      if (!text.empty() || closing || (eos && !pending_raw.empty())) {
        std::string raw = pending_raw + std::string(text) + (closing ? m.marker->text : "");
        emit(kind, text, std::move(raw));
        pending_raw.clear();
      }
    }
    if (m.marker && m.pos < hold_start) return {m.pos + m.marker->text.size(), m.marker};
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
        auto [used, marker] = scan_markers(rest, reasoning_markers, eos, ToolStreamEvent::Kind::kReasoning);
        start += used;
        if (!marker) break;
        mode = Mode::kText;
        continue;
      }
      auto [used, marker] = scan_markers(rest, text_markers, eos, ToolStreamEvent::Kind::kText);
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
  s.options = std::move(options);
  for (auto group : {with_role(s.parser->start_markers(), Role::kCallStart),
                     with_role(s.parser->reasoning_open_markers(), Role::kReasoningOpen),
                     with_role(s.parser->markup_markers(), Role::kMarkup)}) {
    s.text_markers.insert(s.text_markers.end(), group.begin(), group.end());
  }
  s.reasoning_markers = with_role(s.parser->reasoning_close_markers(), Role::kReasoningClose);
  if (s.options.starts_in_reasoning) s.mode = State::Mode::kReasoning;
}

ToolCallProcessor::~ToolCallProcessor() = default;
ToolCallProcessor::ToolCallProcessor(ToolCallProcessor&&) noexcept = default;
ToolCallProcessor& ToolCallProcessor::operator=(ToolCallProcessor&&) noexcept = default;

std::vector<ToolStreamEvent> ToolCallProcessor::feed(std::string_view chunk) {
  if (state_->finished) throw InvalidArgument("ToolCallProcessor::feed after finish()");
  state_->buffer.append(chunk);
  state_->run(/*eos=*/false);
  return state_->take();
}

std::vector<ToolStreamEvent> ToolCallProcessor::finish() {
  if (state_->finished) return {};
  state_->finished = true;
  state_->run(/*eos=*/true);
  return state_->take();
}

ToolCallFormat ToolCallProcessor::format() const { return state_->parser->format(); }

bool ToolCallProcessor::in_tool_call() const { return state_->mode == State::Mode::kCall; }

std::vector<ToolStreamEvent> process_tool_calls(ToolCallFormat format,
                                                std::string_view text,
                                                ToolCallProcessorOptions options) {
  ToolCallProcessor p(format, std::move(options));
  std::vector<ToolStreamEvent> events = p.feed(text);
  for (auto& e : p.finish()) events.push_back(std::move(e));
  return events;
}

}  // namespace lmx::chat
