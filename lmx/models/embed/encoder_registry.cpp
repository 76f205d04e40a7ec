// model_type -> encoder builder, in one table.
#include <algorithm>
#include <utility>

#include "lmx/base/error.h"
#include "lmx/models/embed/bert.h"
#include "lmx/models/embed/encoders.h"

namespace lmx::models::embed {
namespace {

using Builder = std::unique_ptr<Encoder> (*)(const ConfigReader&, bool);

// Encoders without a sequence-classification head here.
template <std::unique_ptr<Encoder> (*make)(const ConfigReader&)>
std::unique_ptr<Encoder> build_without_pooler(const ConfigReader& c, bool with_pooler) {
  if (with_pooler) throw Unsupported(c.get_string("model_type", "") + ": sequence classification is not supported");
  return make(c);
}

const std::vector<std::pair<std::string, Builder>>& table() {
  static const std::vector<std::pair<std::string, Builder>> t = {
      {"bert", make_bert},
      {"roberta", make_bert},
      {"xlm-roberta", make_bert},
      {"distilbert", build_without_pooler<make_distilbert>},
      {"modernbert", build_without_pooler<make_modernbert>},
      {"nomic_bert", build_without_pooler<make_nomic_bert>},
      {"qwen3", build_without_pooler<make_decoder_encoder>},
      {"gemma3_text", build_without_pooler<make_decoder_encoder>}};
  return t;
}

}  // namespace

std::unique_ptr<Encoder> make_bert(const ConfigReader& c, bool with_pooler) {
  return std::make_unique<BertEncoder>(read_bert_config(c, with_pooler), c.get_string("model_type", "bert"));
}

std::unique_ptr<Encoder> create_encoder(const ConfigReader& config, bool with_pooler) {
  const std::string type = config.get_string("model_type", "");
  for (const auto& [name, build] : table()) {
    if (name == type) return build(config, with_pooler);
  }
  std::string known;
  for (const auto& [name, _] : table()) known += (known.empty() ? "" : ", ") + name;
  throw Unsupported(config.source() + ": model_type '" + type + "' is not a supported embedder (supported: " +
                    known + ")");
}

std::vector<std::string> encoder_model_types() {
  std::vector<std::string> out;
  for (const auto& [name, _] : table()) out.push_back(name);
  return out;
}

void check_batch(const Encoder& encoder, const TokenBatch& batch) {
  if (batch.ids.ndim() != 2) throw ShapeError("embed: token ids must be [batch, seq], got " + shape_str(batch.ids.shape()));
  const int64_t B = batch.ids.dim(0), L = batch.ids.dim(1);
  if (static_cast<int64_t>(batch.lengths.size()) != B) {
    throw ShapeError("embed: " + std::to_string(batch.lengths.size()) + " lengths for a batch of " + std::to_string(B));
  }
  if (batch.type_ids.defined() && batch.type_ids.shape() != batch.ids.shape()) {
    throw ShapeError("embed: token type ids " + shape_str(batch.type_ids.shape()) + " do not match the ids " +
                     shape_str(batch.ids.shape()));
  }
  const std::vector<int64_t> ids = batch.ids.to_int_vector();
  const std::vector<int64_t> types = batch.type_ids.defined() ? batch.type_ids.to_int_vector() : std::vector<int64_t>{};
  const int64_t n_types = std::max<int64_t>(encoder.type_vocab_size(), 1);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = batch.lengths[static_cast<size_t>(b)];
    if (len < 1 || len > L) {
      throw InvalidArgument("embed: input " + std::to_string(b) + " has length " + std::to_string(len) +
                            " (must be in [1, " + std::to_string(L) + "])");
    }
    for (int64_t s = 0; s < L; ++s) {
      const size_t i = static_cast<size_t>(b * L + s);
      if (ids[i] < 0 || ids[i] >= encoder.vocab_size()) {
        throw InvalidArgument("embed: input " + std::to_string(b) + " token " + std::to_string(s) + ": id " +
                              std::to_string(ids[i]) + " is outside the vocabulary [0, " +
                              std::to_string(encoder.vocab_size()) + ")");
      }
      if (!types.empty() && (types[i] < 0 || types[i] >= n_types)) {
        throw InvalidArgument("embed: input " + std::to_string(b) + " token " + std::to_string(s) + ": type id " +
                              std::to_string(types[i]) + " is outside [0, " + std::to_string(n_types) + ")");
      }
    }
  }
}

Tensor forward_each_row_alone(const TokenBatch& batch, int64_t hidden,
                              const std::function<Tensor(const TokenBatch& row)>& run) {
  const int64_t B = batch.ids.dim(0), L = batch.ids.dim(1);
  Tensor out = Tensor::zeros({B, L, hidden}, Dtype::f32, batch.ids.device());  // [batch, seq, hidden]
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = batch.lengths[static_cast<size_t>(b)];
    auto cut = [&](const Tensor& t) { return t.slice(0, b, b + 1).slice(1, 0, n).contiguous(); };
    TokenBatch row{.ids = cut(batch.ids), .type_ids = batch.type_ids.defined() ? cut(batch.type_ids) : Tensor(),
                   .lengths = {n}};
    out.slice(0, b, b + 1).slice(1, 0, n).copy_(run(row).to(Dtype::f32));  // [1, n, hidden]
  }
  return out;
}

void strip_prefix_and_heads(WeightDict& weights, const std::vector<std::string>& prefixes,
                            const std::vector<std::string>& dropped) {
  WeightDict out;
  for (auto& [name, t] : weights) {
    std::string n = name;
    for (const std::string& p : prefixes) {
      if (n.rfind(p, 0) == 0) {
        n = n.substr(p.size());
        break;
      }
    }
    const bool drop = std::any_of(dropped.begin(), dropped.end(), [&](const std::string& d) { return n.rfind(d, 0) == 0; });
    if (!drop) out.emplace(std::move(n), t);
  }
  weights = std::move(out);
}

}  // namespace lmx::models::embed
