// The encoder builders and what their sanitize() steps share (internal to lmx/models/embed).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lmx/models/embed/encoder.h"

namespace lmx::models::embed {

std::unique_ptr<Encoder> make_bert(const ConfigReader& c, bool with_pooler);
std::unique_ptr<Encoder> make_distilbert(const ConfigReader& c);
std::unique_ptr<Encoder> make_modernbert(const ConfigReader& c);
std::unique_ptr<Encoder> make_nomic_bert(const ConfigReader& c);
// A decoder-only LLM of lmx/models (causal attention) used as an encoder (decoder_encoder.cpp).
std::unique_ptr<Encoder> make_decoder_encoder(const ConfigReader& c);

// run(row) -> [1, n, hidden] for each row b alone (a batch of one: ids and type ids cut to
// n = lengths[b], no padding), written into f32 [batch, seq, hidden] (zeros past each
// length). For models whose attention would otherwise need a padding mask; a row's result
// does not depend on the batch.
Tensor forward_each_row_alone(const TokenBatch& batch, int64_t hidden,
                              const std::function<Tensor(const TokenBatch& row)>& run);

// Renames "<prefix>name" to "name" for the first matching prefix, then drops every tensor
// whose (renamed) name starts with one of `dropped` (task heads, buffers).
void strip_prefix_and_heads(WeightDict& weights, const std::vector<std::string>& prefixes,
                            const std::vector<std::string>& dropped);

}  // namespace lmx::models::embed
