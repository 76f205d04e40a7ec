#include "lmx/models/embed/yes_no_reranker.h"

#include <algorithm>
#include <cmath>

#include "lmx/base/error.h"
#include "lmx/models/load.h"
#include "lmx/tokenizer/tokenizer.h"

namespace lmx::models::embed {
namespace {

// Qwen3-Reranker's prompt, as its model card builds it.
constexpr const char* kPrefix =
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    "provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n";
constexpr const char* kSuffix = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
constexpr int64_t kModelCardMaxLength = 8192;

int32_t single_token(const tokenizer::Tokenizer& tok, const char* word, const std::filesystem::path& dir) {
  const auto id = tok.token_to_id(word);
  if (!id) throw FormatError("'" + dir.string() + "': the tokenizer has no token \"" + word + "\" (a yes/no reranker needs it)");
  return *id;
}

}  // namespace

const char* const kDefaultRerankInstruction =
    "Given a web search query, retrieve relevant passages that answer the query";

bool is_causal_lm_config(const ConfigReader& config) {
  if (!config.has("architectures") || !config.json().at("architectures").is_array()) return false;
  for (const auto& a : config.json().at("architectures")) {
    if (a.is_string() && a.get<std::string>().ends_with("ForCausalLM")) return true;
  }
  return false;
}

YesNoReranker::YesNoReranker(const std::filesystem::path& dir, Device device, const tokenizer::Tokenizer& tok)
    : device_(device) {
  LoadOptions o;
  o.device = device;
  LoadedModel loaded = load_model(dir, o);
  lm_ = std::move(loaded.model);
  yes_ = single_token(tok, "yes", dir);
  no_ = single_token(tok, "no", dir);
  if (yes_ >= lm_->vocab_size() || no_ >= lm_->vocab_size()) {
    throw FormatError("'" + dir.string() + "': the ids of \"yes\" / \"no\" are outside the model's vocabulary of " +
                      std::to_string(lm_->vocab_size()));
  }
  pad_id_ = tok.pad_id().value_or(0);
  const ConfigReader config(loaded.folder.text_config(), (dir / "config.json").string());
  max_length_ = std::min(kModelCardMaxLength, config.get_int("max_position_embeddings", kModelCardMaxLength));
  prefix_ = tok.encode(kPrefix, false);
  suffix_ = tok.encode(kSuffix, false);
  if (static_cast<int64_t>(prefix_.size() + suffix_.size()) >= max_length_) {
    throw FormatError("'" + dir.string() + "': the reranker prompt alone takes " +
                      std::to_string(prefix_.size() + suffix_.size()) + " tokens of the " +
                      std::to_string(max_length_) + " the model allows");
  }
}

std::vector<int32_t> YesNoReranker::prompt_ids(const tokenizer::Tokenizer& tok, std::string_view instruction,
                                               std::string_view query, std::string_view document,
                                               bool* truncated) const {
  const std::string body = "<Instruct>: " + std::string(instruction.empty() ? kDefaultRerankInstruction : instruction) +
                           "\n<Query>: " + std::string(query) + "\n<Document>: " + std::string(document);
  std::vector<int32_t> ids = tok.encode(body, false);
  const size_t budget = static_cast<size_t>(max_length_) - prefix_.size() - suffix_.size();
  *truncated = ids.size() > budget;
  if (*truncated) ids.resize(budget);  // the model card cuts the formatted text at its end
  ids.insert(ids.begin(), prefix_.begin(), prefix_.end());
  ids.insert(ids.end(), suffix_.begin(), suffix_.end());
  return ids;
}

Tensor YesNoReranker::logits(const TokenBatch& batch) const {
  const int64_t B = batch.ids.dim(0);
  if (static_cast<int64_t>(batch.lengths.size()) != B) throw ShapeError("rerank: one length per row expected");
  ForwardOptions o;
  o.last_position_only = true;
  std::vector<float> out;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = batch.lengths[static_cast<size_t>(b)];
    Tensor ids = batch.ids.slice(0, b, b + 1).slice(1, 0, n).contiguous().to(device_);
    const Tensor last = lm_->forward(ids, nullptr, o).to(Device::cpu()).to(Dtype::f32).contiguous();  // [1, 1, vocab]
    const float* p = last.data<float>();
    out.push_back(p[no_]);
    out.push_back(p[yes_]);
  }
  return Tensor::from_vector(out, {B, 2});
}

float YesNoReranker::yes_probability(float no_logit, float yes_logit) {
  // log_softmax then exp, as the model card: exp(yes - logsumexp(no, yes)).
  const double m = std::max(no_logit, yes_logit);
  const double lse = m + std::log(std::exp(no_logit - m) + std::exp(yes_logit - m));
  return static_cast<float>(std::exp(yes_logit - lse));
}

}  // namespace lmx::models::embed
