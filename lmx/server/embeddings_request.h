// POST /v1/embeddings: the request (OpenAI's shape) and the response body. `input` is a
// string, an array of strings, an array of token ids, or an array of token-id arrays;
// `encoding_format` "float" (default) or "base64" (little-endian f32, as OpenAI sends);
// `dimensions` keeps the first N values (Matryoshka), re-normalized when the model
// normalizes. Every malformed field is a 400 naming it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmx/core/tensor.h"

namespace lmx::server {

struct EmbeddingsRequest {
  std::string model;
  std::vector<std::string> texts;                // input given as text, or
  std::vector<std::vector<int32_t>> token_ids;   // input given as token ids
  bool base64 = false;
  int64_t dimensions = 0;  // 0: the model's
};

// vocab_size bounds token ids; max_inputs bounds the array (a larger one is a 400).
EmbeddingsRequest parse_embeddings_request(const std::string& body, int64_t vocab_size, size_t max_inputs);

// {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": ...}],
//  "model": ..., "usage": {"prompt_tokens": n, "total_tokens": n}}; values f32 [inputs, dim].
nlohmann::ordered_json embeddings_response(const Tensor& values, bool base64, const std::string& model,
                                           int64_t prompt_tokens);

}  // namespace lmx::server
