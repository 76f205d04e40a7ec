#include "lmx/train/dataset.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "lmx/base/error.h"
#include "lmx/generate/model_container.h"

namespace lmx::train {
namespace {

using Json = nlohmann::ordered_json;

std::vector<int32_t> render(const generate::ModelContainer& model, const Json& messages, const Json* tools,
                            bool add_generation_prompt) {
  generate::UserInput in;
  in.messages = std::make_shared<Json>(messages);
  if (tools) in.tools = std::make_shared<Json>(*tools);
  in.add_generation_prompt = add_generation_prompt;
  return model.prepare(in);
}

Example from_record(const Json& rec, const generate::ModelContainer& model, const std::string& where) {
  if (!rec.is_object()) throw FormatError(where + ": a record must be a JSON object");
  const auto& tok = model.tokenizer();
  Example ex;
  auto text_field = [&](const char* key) {
    if (!rec[key].is_string()) throw FormatError(where + ": \"" + key + "\" must be a string");
    return rec[key].get<std::string>();
  };
  if (rec.contains("messages")) {
    const Json& msgs = rec["messages"];
    if (!msgs.is_array() || msgs.empty()) throw FormatError(where + ": \"messages\" must be a non-empty array");
    if (!model.has_chat_template()) throw FormatError(where + ": \"messages\" records need a model with a chat template");
    const Json* tools = rec.contains("tools") ? &rec["tools"] : nullptr;
    ex.tokens = render(model, msgs, tools, false);
    Json head(Json::value_t::array);
    for (size_t i = 0; i + 1 < msgs.size(); ++i) head.push_back(msgs[i]);
    ex.prompt_len = head.empty() ? 0 : static_cast<int64_t>(render(model, head, tools, true).size());
  } else if (rec.contains("prompt") || rec.contains("completion")) {
    const std::string prompt = text_field("prompt"), completion = text_field("completion");
    if (model.has_chat_template()) {
      Json user = {{"role", "user"}, {"content", prompt}};
      Json msgs = Json::array({user, {{"role", "assistant"}, {"content", completion}}});
      ex.tokens = render(model, msgs, nullptr, false);
      ex.prompt_len = static_cast<int64_t>(render(model, Json::array({user}), nullptr, true).size());
    } else {
      ex.tokens = tok.encode(prompt + completion);
      ex.prompt_len = static_cast<int64_t>(tok.encode(prompt).size());
    }
  } else if (rec.contains("text")) {
    ex.tokens = tok.encode(text_field("text"));
  } else {
    throw FormatError(where + ": a record needs \"text\", \"prompt\" and \"completion\", or \"messages\"");
  }
  if (auto eos = tok.eos_id(); eos && (ex.tokens.empty() || ex.tokens.back() != *eos)) ex.tokens.push_back(*eos);
  if (ex.tokens.size() < 2) throw FormatError(where + ": the record has fewer than 2 tokens");
  return ex;
}

}  // namespace

std::vector<Example> load_jsonl(const std::filesystem::path& file, const generate::ModelContainer& model) {
  std::ifstream in(file);
  if (!in) throw IoError("cannot read dataset file " + file.string());
  std::vector<Example> out;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = file.string() + ":" + std::to_string(n);
    Json rec;
    try {
      rec = Json::parse(line);
    } catch (const Json::exception& e) {  // parse_error, and out_of_range for a number that overflows
      throw FormatError(where + ": not valid JSON (" + e.what() + ")");
    }
    out.push_back(from_record(rec, model, where));
  }
  if (out.empty()) throw FormatError(file.string() + ": the dataset file has no records");
  return out;
}

std::vector<std::vector<size_t>> length_sorted_batches(const std::vector<Example>& data, int64_t batch_size) {
  if (batch_size <= 0) throw InvalidArgument("batch size must be positive, got " + std::to_string(batch_size));
  if (static_cast<int64_t>(data.size()) < batch_size) {
    throw InvalidArgument("the dataset has " + std::to_string(data.size()) + " examples, fewer than the batch size " +
                          std::to_string(batch_size));
  }
  std::vector<size_t> order(data.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return data[a].tokens.size() < data[b].tokens.size(); });
  std::vector<std::vector<size_t>> batches;
  const size_t bs = static_cast<size_t>(batch_size);
  for (size_t i = 0; i + bs <= order.size(); i += bs) batches.emplace_back(order.begin() + i, order.begin() + i + bs);
  return batches;
}

Batch make_batch(const std::vector<Example>& data, const std::vector<size_t>& indices, int64_t max_seq_length,
                 bool mask_prompt) {
  if (max_seq_length < 2) throw InvalidArgument("max sequence length must be at least 2");
  int64_t longest = 0;
  for (size_t i : indices) {
    longest = std::max(longest, std::min<int64_t>(static_cast<int64_t>(data.at(i).tokens.size()), max_seq_length));
  }
  const int64_t B = static_cast<int64_t>(indices.size()), T = longest - 1;
  std::vector<int32_t> inputs(static_cast<size_t>(B * T), 0), targets(static_cast<size_t>(B * T), 0);
  std::vector<float> weights(static_cast<size_t>(B * T), 0.0f);
  Batch batch;
  for (int64_t b = 0; b < B; ++b) {
    const Example& ex = data[indices[static_cast<size_t>(b)]];
    const int64_t len = std::min<int64_t>(static_cast<int64_t>(ex.tokens.size()), max_seq_length);
    for (int64_t t = 0; t + 1 < len; ++t) {
      const size_t at = static_cast<size_t>(b * T + t);
      inputs[at] = ex.tokens[static_cast<size_t>(t)];
      targets[at] = ex.tokens[static_cast<size_t>(t + 1)];
      // Target t + 1 is a prompt token when t + 1 < prompt_len.
      if (!mask_prompt || t + 1 >= ex.prompt_len) {
        weights[at] = 1.0f;
        ++batch.tokens;
      }
    }
  }
  batch.inputs = Tensor::from_vector(inputs, {B, T});
  batch.targets = Tensor::from_vector(targets, {B * T});
  batch.weights = Tensor::from_vector(weights, {B * T});
  return batch;
}

int64_t count_longer_than(const std::vector<Example>& data, int64_t max_seq_length) {
  int64_t n = 0;
  for (const auto& ex : data) n += static_cast<int64_t>(ex.tokens.size()) > max_seq_length;
  return n;
}

}  // namespace lmx::train
