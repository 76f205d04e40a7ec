#include "lmx/models/embed/cross_encoder.h"

#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/core/backend.h"
#include "lmx/core/ops/elementwise.h"
#include "lmx/io/model_folder.h"
#include "lmx/models/embed/batching.h"
#include "lmx/models/embed/bert.h"
#include "lmx/models/embed/sentence_transformers_folder.h"
#include "lmx/models/embed/yes_no_reranker.h"
#include "lmx/models/load.h"
#include "lmx/tokenizer/tokenizer.h"

namespace lmx::models::embed {
namespace {

// BERT: classifier(pooler(h[:, 0])). RoBERTa: out_proj(tanh(dense(h[:, 0]))).
class ClassifierHead : public nn::Module {
 public:
  ClassifierHead(bool roberta, int64_t hidden, int64_t labels) {
    if (roberta) {
      dense_ = std::make_unique<nn::Linear>(hidden, hidden, true);
      register_module("classifier.dense", *dense_);
      out_ = std::make_unique<nn::Linear>(hidden, labels, true);
      register_module("classifier.out_proj", *out_);
    } else {
      out_ = std::make_unique<nn::Linear>(hidden, labels, true);
      register_module("classifier", *out_);
    }
  }
  Tensor forward(const BertEncoder& encoder, const Tensor& hidden) const {
    if (!dense_) return forward_row_by_row(*out_, encoder.pool_first_token(hidden));
    return forward_row_by_row(*out_, ops::tanh(forward_row_by_row(*dense_, hidden.select(1, 0).contiguous())));
  }

 private:
  std::unique_ptr<nn::Linear> dense_, out_;
};

}  // namespace

struct CrossEncoder::Impl {
  std::unique_ptr<BertEncoder> encoder;
  std::unique_ptr<ClassifierHead> head;
  std::unique_ptr<YesNoReranker> yes_no;  // instead of encoder + head
  std::unique_ptr<tokenizer::Tokenizer> tok;
  Device device = Device::cpu();
  int64_t labels = 1;
  int64_t max_length = 0;
};

CrossEncoder::CrossEncoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CrossEncoder::CrossEncoder(CrossEncoder&&) noexcept = default;
CrossEncoder& CrossEncoder::operator=(CrossEncoder&&) noexcept = default;
CrossEncoder::~CrossEncoder() = default;

CrossEncoder CrossEncoder::load(const std::filesystem::path& dir, Device device) {
  backend_for(device);
  auto impl = std::make_unique<Impl>();
  impl->device = device;
  io::ModelFolder folder = io::ModelFolder::open(dir);
  const std::string source = (dir / "config.json").string();
  ConfigReader config(folder.text_config(), source);
  if (is_causal_lm_config(config)) {
    if (!std::filesystem::is_regular_file(dir / "tokenizer.json")) {
      throw IoError("'" + dir.string() + "': a yes/no reranker needs its tokenizer.json");
    }
    impl->tok = std::make_unique<tokenizer::Tokenizer>(tokenizer::Tokenizer::from_folder(dir));
    impl->yes_no = std::make_unique<YesNoReranker>(dir, device, *impl->tok);
    impl->labels = 2;
    impl->max_length = impl->yes_no->max_length();
    return CrossEncoder(std::move(impl));
  }
  const std::string type = config.get_string("model_type", "");
  const bool roberta = type == "roberta" || type == "xlm-roberta";
  if (type != "bert" && !roberta) {
    config.fail("model_type", "'" + type + "' is not a supported cross-encoder (bert, roberta, xlm-roberta, or a "
                              "causal LM such as Qwen3-Reranker)");
  }
  if (config.has("id2label") && config.json()["id2label"].is_object()) {
    impl->labels = static_cast<int64_t>(config.json()["id2label"].size());
  }
  impl->labels = config.get_int("num_labels", impl->labels);
  if (impl->labels < 1) config.fail("num_labels", "must be at least 1");
  impl->encoder = std::make_unique<BertEncoder>(read_bert_config(config, !roberta), type);
  impl->head = std::make_unique<ClassifierHead>(roberta, impl->encoder->hidden_size(), impl->labels);
  WeightDict all = read_weights(folder), head;
  for (auto it = all.begin(); it != all.end();) {
    if (it->first.rfind("classifier.", 0) == 0) {
      head.insert(*it);
      it = all.erase(it);
    } else {
      ++it;
    }
  }
  impl->encoder->sanitize(all);
  load_module_weights(*impl->encoder, std::move(all), folder.raw_config(), dir.string(), type);
  load_module_weights(*impl->head, std::move(head), folder.raw_config(), dir.string(), type + " classifier");
  if (!device.is_cpu()) {
    impl->encoder->to(device);
    impl->head->to(device);
  }
  prepare_module_for_inference(*impl->encoder);
  prepare_module_for_inference(*impl->head);
  const SentenceTransformerModules st = read_sentence_transformer_modules(dir);
  std::error_code ec;
  if (std::filesystem::is_regular_file(dir / "tokenizer.json", ec)) {
    impl->tok = std::make_unique<tokenizer::Tokenizer>(tokenizer::Tokenizer::from_folder(dir));
  }
  impl->max_length = impl->encoder->max_length();
  if (st.max_seq_length) impl->max_length = std::min(impl->max_length, *st.max_seq_length);
  else if (impl->tok && impl->tok->config().model_max_length) {
    impl->max_length = std::min<int64_t>(impl->max_length, static_cast<int64_t>(*impl->tok->config().model_max_length));
  }
  return CrossEncoder(std::move(impl));
}

Tensor CrossEncoder::logits(const TokenBatch& batch) const {
  if (impl_->yes_no) return impl_->yes_no->logits(batch);
  check_batch(*impl_->encoder, batch);
  TokenBatch b = batch;
  if (!impl_->device.is_cpu()) {
    b.ids = batch.ids.to(impl_->device);
    if (batch.type_ids.defined()) b.type_ids = batch.type_ids.to(impl_->device);
  }
  Tensor h = impl_->encoder->forward(b);
  return impl_->head->forward(*impl_->encoder, h).to(Device::cpu());
}

RerankScores CrossEncoder::score(std::string_view query, std::span<const std::string> documents,
                                 const RerankOptions& options) const {
  const tokenizer::Tokenizer& tok = tokenizer();
  RerankScores out;
  std::vector<TokenInput> inputs(documents.size());
  if (impl_->yes_no) {
    for (size_t i = 0; i < documents.size(); ++i) {
      bool cut = false;
      inputs[i].ids = impl_->yes_no->prompt_ids(tok, options.instruction, query, documents[i], &cut);
      out.truncated += cut ? 1 : 0;
    }
    Tensor logits = run_in_batches(inputs, impl_->yes_no->pad_id(), options.max_batch_tokens,
                                   [&](const TokenBatch& b) { return this->logits(b); });
    const float* p = logits.data<float>();
    for (size_t i = 0; i < documents.size(); ++i) out.scores.push_back(YesNoReranker::yes_probability(p[2 * i], p[2 * i + 1]));
    return out;
  }
  const bool types = impl_->encoder->type_vocab_size() >= 2;
  for (size_t i = 0; i < documents.size(); ++i) {
    tokenizer::Encoding e = tok.encode_pair(query, documents[i]);
    if (truncate_pair_longest_first(e, impl_->max_length)) ++out.truncated;
    inputs[i].ids = std::move(e.ids);
    if (types) inputs[i].type_ids = std::move(e.type_ids);
  }
  Tensor logits = run_in_batches(inputs, impl_->encoder->pad_id(), options.max_batch_tokens,
                                 [&](const TokenBatch& b) { return this->logits(b); });
  const float* p = logits.data<float>();
  for (size_t i = 0; i < documents.size(); ++i) out.scores.push_back(p[static_cast<int64_t>(i) * impl_->labels]);
  return out;
}

bool CrossEncoder::is_yes_no() const { return impl_->yes_no != nullptr; }
int64_t CrossEncoder::num_labels() const { return impl_->labels; }
int64_t CrossEncoder::max_length() const { return impl_->max_length; }

const tokenizer::Tokenizer& CrossEncoder::tokenizer() const {
  if (!impl_->tok) throw InvalidArgument("the cross-encoder folder has no tokenizer.json");
  return *impl_->tok;
}

bool truncate_pair_longest_first(tokenizer::Encoding& e, int64_t max_length) {
  const int64_t n = static_cast<int64_t>(e.ids.size());
  if (n <= max_length) return false;
  // The two runs of ordinary tokens: [begin, end) each.
  std::vector<std::pair<int64_t, int64_t>> runs;
  for (int64_t i = 0; i < n; ++i) {
    if (e.special_tokens_mask[static_cast<size_t>(i)]) continue;
    if (runs.empty() || runs.back().second != i) runs.push_back({i, i});
    runs.back().second = i + 1;
  }
  if (runs.size() > 2) throw InvalidArgument("truncate pair: the encoding has more than two runs of tokens");
  while (runs.size() < 2) runs.push_back({n, n});
  int64_t first = runs[0].second - runs[0].first, second = runs[1].second - runs[1].first;
  const int64_t to_remove = n - max_length;
  if (to_remove > first + second) {
    throw InvalidArgument("truncate pair: the special tokens alone exceed " + std::to_string(max_length) + " tokens");
  }
  // The tokenizers library's rule: the shorter run keeps its length when it fits in half
  // the budget (the longer one takes the rest), else it gets the budget's floor half and
  // the longer one the ceiling half (so on a tie the first run is the shorter one).
  const int64_t budget = first + second - to_remove;
  const bool swapped = first > second;
  int64_t shorter = swapped ? second : first, longer;
  if (shorter > budget / 2) {
    shorter = budget / 2;
    longer = shorter + budget % 2;
  } else {
    longer = budget - shorter;
  }
  first = swapped ? longer : shorter;
  second = swapped ? shorter : longer;
  std::vector<bool> keep(static_cast<size_t>(n), true);
  for (int64_t i = runs[0].first + first; i < runs[0].second; ++i) keep[static_cast<size_t>(i)] = false;
  for (int64_t i = runs[1].first + second; i < runs[1].second; ++i) keep[static_cast<size_t>(i)] = false;
  tokenizer::Encoding out;
  for (int64_t i = 0; i < n; ++i) {
    if (!keep[static_cast<size_t>(i)]) continue;
    const size_t u = static_cast<size_t>(i);
    out.ids.push_back(e.ids[u]);
    out.type_ids.push_back(e.type_ids[u]);
    out.attention_mask.push_back(e.attention_mask[u]);
    out.special_tokens_mask.push_back(e.special_tokens_mask[u]);
  }
  e = std::move(out);
  return true;
}

}  // namespace lmx::models::embed
