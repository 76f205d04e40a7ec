#include "lmx/generate/generate.h"

namespace lmx::generate {

TextStream::TextStream(const tokenizer::Tokenizer& tok, const GenerateOptions& options)
    : stop_strings_(options.stop_strings), detok_(tok.streaming_detokenizer(options.skip_special_tokens)) {
  if (options.tool_call_format)
    tool_processor_ = std::make_unique<chat::ToolCallProcessor>(*options.tool_call_format, options.tool_calls);
}

bool TextStream::add(int32_t token, std::deque<GenerationEvent>& out) {
  pending_ += detok_.add(token);
  for (const auto& s : stop_strings_) {
    const size_t at = pending_.find(s);
    if (at != std::string::npos) {
      pending_.resize(at);  // the stop string and anything after it are never emitted
      return true;
    }
  }
  emit(release_safe_text(), false, out);
  return false;
}

void TextStream::end(bool flush_detokenizer, std::deque<GenerationEvent>& out) {
  std::string text = std::exchange(pending_, {});
  if (flush_detokenizer) text += detok_.finish();
  emit(std::move(text), true, out);
}

void TextStream::emit(std::string text, bool final, std::deque<GenerationEvent>& out) {
  if (!tool_processor_) {
    if (!text.empty()) {
      GenerationEvent e;
      e.text = std::move(text);
      out.push_back(std::move(e));
    }
    return;
  }
  std::vector<chat::ToolStreamEvent> events;
  if (!text.empty()) events = tool_processor_->feed(text);
  if (final) {
    auto rest = tool_processor_->finish();
    events.insert(events.end(), std::make_move_iterator(rest.begin()), std::make_move_iterator(rest.end()));
  }
  using TK = chat::ToolStreamEvent::Kind;
  for (auto& t : events) {
    GenerationEvent e;
    switch (t.kind) {
      case TK::kText:
        if (t.text.empty()) continue;  // protocol markup (Harmony headers): no text for the user
        e.text = std::move(t.text);
        break;
      case TK::kReasoning:
        if (t.text.empty()) continue;
        e.kind = GenerationEvent::Kind::reasoning;
        e.text = std::move(t.text);
        break;
      case TK::kToolCall:
        e.kind = GenerationEvent::Kind::tool_call;
        e.call = std::move(t.call);
        e.text = std::move(t.raw);
        break;
      case TK::kRejectedToolCall:
        e.kind = GenerationEvent::Kind::rejected_tool_call;
        e.error = std::move(t.error);
        e.text = std::move(t.raw);
        break;
    }
    out.push_back(std::move(e));
  }
}

std::string TextStream::release_safe_text() {
  if (stop_strings_.empty()) return std::exchange(pending_, {});
  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const auto& s : stop_strings_) {
    for (size_t len = std::min(s.size() - 1, pending_.size()); len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

}  // namespace lmx::generate
