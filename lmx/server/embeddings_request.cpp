#include "lmx/server/embeddings_request.h"

#include <cstring>

#include "lmx/base/base64.h"
#include "lmx/server/api_error.h"
#include "lmx/server/request_fields.h"

namespace lmx::server {

using json = nlohmann::ordered_json;

namespace {

std::vector<int32_t> token_list(const json& a, const std::string& field, int64_t vocab_size) {
  if (a.empty()) throw ApiError(400, field + " is an empty token list", field);
  std::vector<int32_t> ids;
  ids.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const json& v = a[i];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= vocab_size) {
      throw ApiError(400,
                     field + "[" + std::to_string(i) + "] must be a token id in [0, " + std::to_string(vocab_size) + ")",
                     field);
    }
    ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  return ids;
}

}  // namespace

EmbeddingsRequest parse_embeddings_request(const std::string& body, int64_t vocab_size, size_t max_inputs) {
  const json j = parse_body(body);
  RequestFields f(j);
  EmbeddingsRequest r;
  r.model = f.string("model").value_or("");
  const json* input = f.get("input");
  if (!input) throw ApiError(400, "input is required", "input");
  if (input->is_string()) {
    r.texts.push_back(input->get<std::string>());
  } else if (input->is_array()) {
    if (input->empty()) throw ApiError(400, "input is an empty array", "input");
    if (input->size() > max_inputs) {
      throw ApiError(400, "input has " + std::to_string(input->size()) + " items; at most " +
                              std::to_string(max_inputs) + " per request",
                     "input");
    }
    const json& first = (*input)[0];
    if (first.is_number_integer()) {
      r.token_ids.push_back(token_list(*input, "input", vocab_size));
    } else {
      for (size_t i = 0; i < input->size(); ++i) {
        const json& item = (*input)[i];
        const std::string name = "input[" + std::to_string(i) + "]";
        if (first.is_string() && item.is_string()) {
          r.texts.push_back(item.get<std::string>());
        } else if (first.is_array() && item.is_array()) {
          r.token_ids.push_back(token_list(item, name, vocab_size));
        } else {
          throw ApiError(400, name + " must be " + (first.is_array() ? "a token-id array" : "a string") +
                                  " like input[0] (input is a string, strings, token ids or token-id arrays)",
                         "input");
        }
      }
    }
  } else {
    throw ApiError(400, "input must be a string, an array of strings, token ids or token-id arrays", "input");
  }
  const std::string format = f.string("encoding_format").value_or("float");
  if (format != "float" && format != "base64")
    throw ApiError(400, "encoding_format must be \"float\" or \"base64\"", "encoding_format");
  r.base64 = format == "base64";
  r.dimensions = f.integer("dimensions", 1, int64_t{1} << 20).value_or(0);
  return r;
}

json embeddings_response(const Tensor& values, bool base64, const std::string& model, int64_t prompt_tokens) {
  const std::vector<float> v = values.to_float_vector();
  const int64_t rows = values.shape()[0], dim = values.shape()[1];
  json data = json::array();
  for (int64_t i = 0; i < rows; ++i) {
    const float* row = v.data() + i * dim;
    json item = {{"object", "embedding"}, {"index", i}};
    if (base64) {
      item["embedding"] = encode_base64(row, static_cast<size_t>(dim) * sizeof(float));
    } else {
      item["embedding"] = std::vector<float>(row, row + dim);
    }
    data.push_back(std::move(item));
  }
  return {{"object", "list"},
          {"data", std::move(data)},
          {"model", model},
          {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}};
}

}  // namespace lmx::server
