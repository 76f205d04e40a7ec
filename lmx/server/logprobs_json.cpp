#include "lmx/server/logprobs_json.h"

#include <string>

namespace lmx::server {

using json = nlohmann::ordered_json;

namespace {

std::string token_text(const tokenizer::Tokenizer& tok, int32_t id) {
  const int32_t ids[1] = {id};
  return tok.decode(ids, false, false);
}

json bytes_of(const std::string& s) {
  json out = json::array();
  for (unsigned char c : s) out.push_back(static_cast<int>(c));
  return out;
}

json entry(const tokenizer::Tokenizer& tok, int32_t id, float logprob) {
  const std::string text = token_text(tok, id);
  return {{"token", text}, {"logprob", logprob}, {"bytes", bytes_of(text)}};
}

}  // namespace

json chat_logprobs_json(const tokenizer::Tokenizer& tok, const std::vector<generate::TokenLogprob>& tokens) {
  json content = json::array();
  for (const auto& t : tokens) {
    json e = entry(tok, t.token, t.logprob);
    json top = json::array();
    for (const auto& [id, lp] : t.top_logprobs) top.push_back(entry(tok, id, lp));
    e["top_logprobs"] = std::move(top);
    content.push_back(std::move(e));
  }
  return {{"content", std::move(content)}, {"refusal", nullptr}};
}

json completion_logprobs_json(const tokenizer::Tokenizer& tok, const std::vector<generate::TokenLogprob>& tokens,
                              size_t top_logprobs, size_t offset) {
  json texts = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  for (const auto& t : tokens) {
    const std::string text = token_text(tok, t.token);
    texts.push_back(text);
    lps.push_back(t.logprob);
    offsets.push_back(offset);
    offset += text.size();
    json top = json::object();
    for (const auto& [id, lp] : t.top_logprobs) top[token_text(tok, id)] = lp;
    tops.push_back(std::move(top));
  }
  return {{"tokens", std::move(texts)},
          {"token_logprobs", std::move(lps)},
          {"top_logprobs", top_logprobs > 0 ? std::move(tops) : json()},
          {"text_offset", std::move(offsets)}};
}

}  // namespace lmx::server
