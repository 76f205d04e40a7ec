#include "lmx/chat/harmony_stream_adapter.h"

#include <string>

#include "lmx/chat/marker_scan.h"
#include "lmx/chat/tool_call_region.h"

namespace lmx::chat {

namespace {

const std::string kMessage = "<|message|>";
const std::string kCall = "<|call|>";
// What may open a header. ` to=` only at the very start: the prompt ended in
// `<|start|>assistant` and the model continues the header with a recipient.
const std::vector<std::string> kHeaderStarts = {"<|start|>", "<|channel|>", "<|constrain|>",
                                                kMessage};
const std::vector<std::string> kFirstHeaderStarts = {"<|start|>", "<|channel|>", "<|constrain|>",
                                                     kMessage, " to="};
// What ends a payload: its terminators, or (terminator missing) the next header.
const std::vector<std::string> kPayloadEnds = {"<|end|>", kCall, "<|return|>", "<|start|>",
                                               "<|channel|>"};
constexpr size_t kTerminators = 3;  // the first three of kPayloadEnds
// A "header" longer than this is text that merely began like one.
constexpr size_t kMaxHeaderBytes = 4096;

struct Header {
  std::string channel = "final";
  std::string recipient;
};

// The word after `key` in a header, up to a blank or the next tag.
std::string header_word(std::string_view header, std::string_view key) {
  size_t at = header.find(key);
  if (at == std::string_view::npos) return "";
  std::string_view rest = header.substr(at + key.size());
  return std::string(rest.substr(0, rest.find_first_of(" \t\r\n<")));
}

Header parse_header(std::string_view text) {
  Header h;
  if (std::string c = header_word(text, "<|channel|>"); !c.empty()) h.channel = c;
  h.recipient = header_word(text, "to=");
  return h;
}

bool is_proper_prefix_of_any(std::string_view s, const std::vector<std::string>& markers) {
  for (const auto& m : markers) {
    if (s.size() < m.size() && std::string_view(m).substr(0, s.size()) == s) return true;
  }
  return false;
}

bool starts_with_any(std::string_view s, const std::vector<std::string>& markers) {
  for (const auto& m : markers) {
    if (s.substr(0, m.size()) == m) return true;
  }
  return false;
}

}  // namespace

struct HarmonyStreamAdapter::State {
  enum class Phase { kBetween, kHeader, kPayload };

  ToolCallProcessorOptions options;
  std::unique_ptr<ToolCallParser> parser = make_tool_call_parser(ToolCallFormat::kGptOss);
  Phase phase = Phase::kBetween;
  bool at_stream_start = true;
  bool finished = false;
  Header header;
  std::string buffer;     // input not yet consumed
  std::string call_text;  // a call frame so far (header and payload), not yet reported
  size_t next_id = 0;
  std::vector<ToolStreamEvent> out;

  void emit(ToolStreamEvent::Kind kind, std::string_view text, std::string_view raw) {
    bool plain = text == raw;
    if (plain && !out.empty() && out.back().kind == kind && out.back().text == out.back().raw &&
        out.back().channel == header.channel && !text.empty()) {
      out.back().text += text;  // merge the streamed payload of one feed
      out.back().raw += text;
      return;
    }
    ToolStreamEvent e;
    e.kind = kind;
    e.text = std::string(text);
    e.raw = std::string(raw);
    e.channel = header.channel;
    out.push_back(std::move(e));
  }

  void report_call(std::string_view terminator) {
    std::string region = call_text + std::string(terminator);
    std::vector<ToolStreamEvent> events;
    if (terminator == kCall) {
      events = detail::region_events(*parser, region, options.tools, next_id);
    } else {
      std::string how = terminator.empty() ? "the message ended without it"
                                           : "it ended with " + std::string(terminator);
      events = {detail::rejected_event(region, "Harmony message to '" + header.recipient +
                                                   "' is not a call: <|call|> must end it, but " +
                                                   how)};
    }
    for (auto& e : events) {
      e.channel = header.channel;
      e.recipient = header.recipient;
      out.push_back(std::move(e));
    }
    call_text.clear();
  }

  // Returns false when more input is needed.
  bool step(bool eos) {
    std::string_view b = buffer;
    switch (phase) {
      case Phase::kBetween: {
        const auto& starts = at_stream_start ? kFirstHeaderStarts : kHeaderStarts;
        if (b.empty()) return false;
        if (!eos && is_proper_prefix_of_any(b, starts)) return false;
        at_stream_start = false;
        header = Header{};
        phase = starts_with_any(b, starts) ? Phase::kHeader : Phase::kPayload;  // else: final text
        return true;
      }
      case Phase::kHeader: {
        size_t m = b.find(kMessage);
        if (m == std::string_view::npos && !eos && b.size() <= kMaxHeaderBytes) return false;
        if (m == std::string_view::npos) {
          // Cut off in a header (markup), or text that only began like one.
          header = Header{};
          emit(ToolStreamEvent::Kind::kText, eos ? "" : b, b);
          buffer.clear();
          phase = Phase::kPayload;
          return true;
        }
        size_t end = m + kMessage.size();
        header = parse_header(b.substr(0, end));
        if (header.recipient.empty()) {
          emit(ToolStreamEvent::Kind::kText, "", b.substr(0, end));
        } else {
          call_text = std::string(b.substr(0, end));
        }
        buffer.erase(0, end);
        phase = Phase::kPayload;
        return true;
      }
      case Phase::kPayload:
        return header.recipient.empty() ? stream_payload(eos) : collect_call(eos);
    }
    return false;
  }

  bool stream_payload(bool eos) {
    std::string_view b = buffer;
    detail::MarkerHit hit = detail::find_first_marker(b, kPayloadEnds);
    size_t text_end = hit.pos != std::string_view::npos ? hit.pos
                      : eos                             ? b.size()
                            : b.size() - detail::partial_marker_suffix(b, kPayloadEnds);
    auto kind = header.channel == "analysis" ? ToolStreamEvent::Kind::kReasoning
                                             : ToolStreamEvent::Kind::kText;
    if (text_end > 0) emit(kind, b.substr(0, text_end), b.substr(0, text_end));
    size_t used = text_end;
    if (hit.pos != std::string_view::npos) {
      if (hit.index < kTerminators) {
        emit(ToolStreamEvent::Kind::kText, "", kPayloadEnds[hit.index]);
        used += kPayloadEnds[hit.index].size();
      }
      phase = Phase::kBetween;
    }
    buffer.erase(0, used);
    return hit.pos != std::string_view::npos;
  }

  bool collect_call(bool eos) {
    std::string_view b = buffer;
    detail::MarkerHit hit = detail::find_first_marker(b, kPayloadEnds);
    if (hit.pos == std::string_view::npos) {
      // Move what cannot start an end into call_text, so rescans stay short.
      size_t keep = eos ? 0 : detail::partial_marker_suffix(b, kPayloadEnds);
      call_text.append(b.substr(0, b.size() - keep));
      buffer.erase(0, b.size() - keep);
      if (eos) {
        report_call("");
        phase = Phase::kBetween;
      } else if (call_text.size() > options.max_call_bytes) {
        out.push_back(detail::rejected_event(call_text, "tool call longer than " +
                                                            std::to_string(options.max_call_bytes) +
                                                            " bytes without an end"));
        call_text.clear();
        header.recipient.clear();  // the rest of the message streams as text
      }
      return false;
    }
    call_text.append(b.substr(0, hit.pos));
    bool terminated = hit.index < kTerminators;
    report_call(terminated ? std::string_view(kPayloadEnds[hit.index]) : std::string_view());
    buffer.erase(0, hit.pos + (terminated ? kPayloadEnds[hit.index].size() : 0));
    phase = Phase::kBetween;
    return true;
  }

  void run(bool eos) {
    while (step(eos)) {
    }
  }

  std::vector<ToolStreamEvent> take() {
    std::vector<ToolStreamEvent> events;
    events.swap(out);
    return events;
  }
};

HarmonyStreamAdapter::HarmonyStreamAdapter(ToolCallProcessorOptions options)
    : state_(std::make_unique<State>()) {
  state_->options = std::move(options);
  if (state_->options.starts_in_reasoning) {
    state_->header.channel = "analysis";
    state_->phase = State::Phase::kPayload;
    state_->at_stream_start = false;
  }
}

HarmonyStreamAdapter::~HarmonyStreamAdapter() = default;
HarmonyStreamAdapter::HarmonyStreamAdapter(HarmonyStreamAdapter&&) noexcept = default;
HarmonyStreamAdapter& HarmonyStreamAdapter::operator=(HarmonyStreamAdapter&&) noexcept = default;

std::vector<ToolStreamEvent> HarmonyStreamAdapter::feed(std::string_view chunk) {
  if (state_->finished) throw InvalidArgument("HarmonyStreamAdapter::feed after finish()");
  state_->buffer.append(chunk);
  state_->run(/*eos=*/false);
  return state_->take();
}

std::vector<ToolStreamEvent> HarmonyStreamAdapter::finish() {
  if (state_->finished) return {};
  state_->finished = true;
  state_->run(/*eos=*/true);
  return state_->take();
}

bool HarmonyStreamAdapter::in_tool_call() const {
  return state_->phase == State::Phase::kPayload && !state_->header.recipient.empty();
}

}  // namespace lmx::chat
