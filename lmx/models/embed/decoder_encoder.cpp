// Decoder-only embedders: the LLM architecture of lmx/models run without its output head,
// the final-normed hidden state of every position returned. Qwen3-Embedding is causal,
// which makes right padding harmless: a real token never sees the padding after it, so
// no mask is needed and last-token pooling reads position length - 1. EmbeddingGemma
// (gemma3_text with use_bidirectional_attention) sees both ways: each row runs alone over
// exactly its real tokens, as the BERT encoders' attention does.
#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/models/embed/encoders.h"
#include "lmx/models/registry.h"

namespace lmx::models::embed {
namespace {

class DecoderEncoder final : public Encoder {
 public:
  explicit DecoderEncoder(const ConfigReader& c) {
    const std::string type = c.get_string("model_type", "");
    bidirectional_ = c.get_bool("use_bidirectional_attention", false);
    if (bidirectional_ && type != "gemma3_text") {  // the architectures whose spec reads the flag
      c.fail("use_bidirectional_attention", "bidirectional attention is supported for gemma3_text only, not " + type);
    }
    if (!c.get_bool("is_causal", true)) c.fail("is_causal", "non-causal " + type + " embedders are not supported");
    // The head is never run: build the model tied so that it has no lm_head to load.
    nlohmann::json j = c.json();
    j["tie_word_embeddings"] = true;
    ConfigReader tied(j, c.source());
    lm_ = create_model(tied);
    model_type_ = lm_->model_type();
    hidden_ = c.require_int("hidden_size");
    vocab_ = lm_->vocab_size();
    max_length_ = c.get_int("max_position_embeddings", 0);
    pad_ = static_cast<int32_t>(c.get_int("pad_token_id", 0));
    register_module("", *lm_);
  }

  Tensor forward(const TokenBatch& batch) const override {
    ForwardOptions o;
    o.hidden_only = true;
    if (!bidirectional_) return lm_->forward(batch.ids, nullptr, o);
    return forward_each_row_alone(batch, hidden_, [&](const TokenBatch& row) { return lm_->forward(row.ids, nullptr, o); });
  }
  int64_t hidden_size() const override { return hidden_; }
  int64_t vocab_size() const override { return vocab_; }
  int64_t max_length() const override { return max_length_; }
  int32_t pad_id() const override { return pad_; }
  int64_t type_vocab_size() const override { return 0; }

  // AutoModel checkpoints name the base model's tensors without "model." and may carry an
  // lm_head (dropped); then the architecture's own renames.
  void sanitize(WeightDict& weights) const override {
    WeightDict out;
    for (auto& [name, t] : weights) {
      if (name.rfind("lm_head.", 0) == 0) continue;
      out[name.rfind("model.", 0) == 0 ? name : "model." + name] = std::move(t);
    }
    lm_->sanitize(out);
    weights = std::move(out);
  }

 private:
  std::unique_ptr<LanguageModel> lm_;
  int64_t hidden_ = 0, vocab_ = 0, max_length_ = 0;
  int32_t pad_ = 0;
  bool bidirectional_ = false;
};

}  // namespace

std::unique_ptr<Encoder> make_decoder_encoder(const ConfigReader& c) { return std::make_unique<DecoderEncoder>(c); }

}  // namespace lmx::models::embed
