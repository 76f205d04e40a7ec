#include "lmx/generate/generate.h"

#include <nlohmann/json.hpp>

#include "lmx/core/allocator.h"
#include "lmx/base/error.h"

namespace lmx::generate {
namespace {

void add_ids(const nlohmann::json* j, std::set<int32_t>& out) {
  if (!j || j->is_null()) return;
  if (j->is_number_integer()) out.insert(j->get<int32_t>());
  if (j->is_array())
    for (const auto& v : *j)
      if (v.is_number_integer()) out.insert(v.get<int32_t>());
}

const nlohmann::json* field(const nlohmann::json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

}  // namespace

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::stop: return "stop";
    case StopReason::length: return "length";
    case StopReason::cancelled: return "cancelled";
  }
  return "?";
}

std::set<int32_t> collect_eos_ids(const io::ModelFolder& folder, const tokenizer::Tokenizer& tok,
                                  const std::vector<std::string>& extra) {
  std::set<int32_t> ids;
  const nlohmann::json* gen = folder.generation_config();
  if (gen && field(*gen, "eos_token_id")) {
    add_ids(field(*gen, "eos_token_id"), ids);
  } else {
    add_ids(field(folder.raw_config(), "eos_token_id"), ids);
    add_ids(field(folder.text_config(), "eos_token_id"), ids);
  }
  if (auto e = tok.eos_id()) ids.insert(*e);
  for (const auto& t : extra) {
    auto id = tok.token_to_id(t);
    if (!id) throw InvalidArgument("extra EOS token '" + t + "' is not in the tokenizer's vocabulary");
    ids.insert(*id);
  }
  return ids;
}

void default_xtc_special_tokens(GenerateParameters& params, const tokenizer::Tokenizer& tok,
                                const std::set<int32_t>& eos_ids) {
  if (params.xtc_probability <= 0 || !params.xtc_special_tokens.empty()) return;
  params.xtc_special_tokens = tok.encode("\n", false);
  params.xtc_special_tokens.insert(params.xtc_special_tokens.end(), eos_ids.begin(), eos_ids.end());
}

Generation::Generation(models::LanguageModel& model, const tokenizer::Tokenizer& tok, std::vector<int32_t> prompt,
                       const GenerateParameters& params, GenerateOptions options, nn::KVCacheList* cache)
    : options_(std::move(options)), text_(tok, options_) {
  options_.iterator.cancel = &cancel_;
  options_.iterator.stop = stop_.get_token();
  allocator_for(Device::cpu()).reset_peak();
  params_ = params;
  default_xtc_special_tokens(params_, tok, options_.eos_ids);
  it_ = std::make_unique<TokenIterator>(model, std::move(prompt), params_, cache, options_.iterator);
}

namespace {

// Counts, timings and rates of a token loop.
GenerationInfo iterator_info(const TokenIterator& it) {
  GenerationInfo i;
  i.prompt_tokens = it.prompt_tokens();
  i.generated_tokens = it.generated_tokens();
  i.prompt_seconds = it.prompt_seconds();
  i.generation_seconds = it.generation_seconds();
  i.prompt_tps = i.prompt_seconds > 0 ? static_cast<double>(i.prompt_tokens) / i.prompt_seconds : 0;
  // The first token comes out of the prompt pass; the rest are decode steps.
  i.generation_tps = i.generation_seconds > 0 ? static_cast<double>(i.generated_tokens - 1) / i.generation_seconds : 0;
  const SpeculativeStats s = it.speculative_stats();
  i.draft_tokens = s.drafted;
  i.accepted_draft_tokens = s.accepted;
  return i;
}

}  // namespace

GenerationEvent Generation::finish(StopReason reason) {
  GenerationEvent e;
  e.kind = GenerationEvent::Kind::info;
  GenerationInfo& i = e.info;
  i = iterator_info(*it_);
  i.cached_prompt_tokens = it_->cached_prompt_tokens();
  i.peak_memory_bytes = allocator_for(Device::cpu()).stats().peak_bytes;
  i.stop_reason = reason;
  info_sent_ = true;
  return e;
}

void Generation::end(StopReason reason, bool flush_detokenizer) {
  final_reason_ = reason;
  it_->release_wired();
  text_.end(flush_detokenizer, queue_);
  queue_.push_back(finish(reason));
}

std::optional<GenerationEvent> Generation::next() {
  if (queue_.empty() && !info_sent_) produce();
  if (queue_.empty()) return std::nullopt;
  GenerationEvent e = std::move(queue_.front());
  queue_.pop_front();
  return e;
}

StopReason Generation::run(const std::function<bool(const GenerationEvent&)>& fn) {
  while (auto e = next()) {
    if (e->kind == GenerationEvent::Kind::info) {
      fn(*e);
      return e->info.stop_reason;
    }
    if (!fn(*e)) {
      final_reason_ = StopReason::cancelled;
      info_sent_ = true;
      it_->release_wired();
      return StopReason::cancelled;
    }
  }
  return final_reason_.value_or(StopReason::length);
}

void Generation::produce() {
  if (final_reason_) {
    queue_.push_back(finish(*final_reason_));
    return;
  }
  while (queue_.empty()) {
    std::optional<int32_t> token;
    try {
      token = it_->next();
    } catch (const Cancelled&) {
      return end(StopReason::cancelled, true);
    }
    if (!token) return end(StopReason::length, true);
    tokens_.push_back(*token);
    if (options_.token_events) {
      // The token goes first and whatever this step releases follows.
      GenerationEvent t;
      t.kind = GenerationEvent::Kind::token;
      t.token = it_->sampler().logprob(*token);
      queue_.push_back(std::move(t));
    }
    if (options_.eos_ids.count(*token)) return end(StopReason::stop, true);
    if (text_.add(*token, queue_)) return end(StopReason::stop, false);
  }
}

TokenGeneration::TokenGeneration(models::LanguageModel& model, std::vector<int32_t> prompt,
                                 const GenerateParameters& params, std::set<int32_t> eos_ids, nn::KVCacheList* cache,
                                 TokenIteratorOptions options)
    : eos_(std::move(eos_ids)) {
  options.cancel = &cancel_;
  options.stop = stop_.get_token();
  it_ = std::make_unique<TokenIterator>(model, std::move(prompt), params, cache, std::move(options));
}

std::optional<TokenLogprob> TokenGeneration::stop_with(StopReason reason) {
  reason_ = reason;
  it_->release_wired();
  return std::nullopt;
}

std::optional<TokenLogprob> TokenGeneration::next() {
  if (reason_) return std::nullopt;
  std::optional<int32_t> token;
  try {
    token = it_->next();
  } catch (const Cancelled&) {
    return stop_with(StopReason::cancelled);
  }
  if (!token) return stop_with(StopReason::length);
  if (eos_.count(*token)) return stop_with(StopReason::stop);
  return it_->sampler().logprob(*token);
}

StopReason TokenGeneration::run(const std::function<bool(const TokenLogprob&)>& fn) {
  while (auto t = next()) {
    if (!fn(*t)) {
      stop_with(StopReason::cancelled);
      break;
    }
  }
  return *reason_;
}

GenerationInfo TokenGeneration::info() const {
  GenerationInfo i = iterator_info(*it_);
  i.stop_reason = reason_.value_or(StopReason::length);
  return i;
}

}  // namespace lmx::generate
