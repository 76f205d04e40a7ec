#include "lmx/models/embed/embedder.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "lmx/base/error.h"
#include "lmx/core/backend.h"
#include "lmx/io/model_folder.h"
#include "lmx/models/embed/batching.h"
#include "lmx/models/embed/embedder_folder.h"
#include "lmx/models/embed/encoder.h"
#include "lmx/models/embed/sentence_transformers_folder.h"
#include "lmx/models/load.h"
#include "lmx/tokenizer/tokenizer.h"

namespace lmx::models::embed {
namespace fs = std::filesystem;

struct Embedder::Impl {
  SentenceTransformerModules modules;
  std::unique_ptr<Encoder> encoder;
  std::vector<PoolingMode> pooling;
  std::vector<std::unique_ptr<DenseLayer>> dense;
  std::unique_ptr<tokenizer::Tokenizer> tok;
  Device device = Device::cpu();
  int64_t dimension = 0;
  int64_t max_length = 0;
  bool normalize = true;

  // Checked batch -> last hidden state on the host.
  Tensor hidden(const TokenBatch& batch) const;
  // Pooling, then the Dense layers: [batch, dimension].
  Tensor project(const Tensor& hidden, const std::vector<int64_t>& lengths) const;
  Embeddings run(std::vector<TokenInput> inputs, size_t truncated, const EmbedOptions& o) const;
};

namespace {

// The tokenizer files of a folder, or null when it has none (token ids only).
std::unique_ptr<tokenizer::Tokenizer> load_tokenizer(const fs::path& dir) {
  std::error_code ec;
  for (const char* f : {"tokenizer.json", "tokenizer.model", "tokenizer.tiktoken"}) {
    if (fs::is_regular_file(dir / f, ec)) {
      return std::make_unique<tokenizer::Tokenizer>(tokenizer::Tokenizer::from_folder(dir));
    }
  }
  if (fs::is_regular_file(dir / "vocab.txt", ec)) {
    const bool lowercase = tokenizer::Tokenizer::load_config(dir).tokenizer_class.find("Cased") == std::string::npos;
    return std::make_unique<tokenizer::Tokenizer>(tokenizer::Tokenizer::from_wordpiece_vocab(dir / "vocab.txt", lowercase));
  }
  return nullptr;
}

}  // namespace

Embedder::Embedder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Embedder::Embedder(Embedder&&) noexcept = default;
Embedder& Embedder::operator=(Embedder&&) noexcept = default;
Embedder::~Embedder() = default;

Embedder Embedder::load(const fs::path& dir, const EmbedderOptions& options) {
  backend_for(options.device);  // an unavailable device fails before anything is read
  auto impl = std::make_unique<Impl>();
  impl->device = options.device;
  LoadedEncoder loaded = load_encoder(dir, options.device);
  impl->modules = std::move(loaded.modules);
  impl->encoder = std::move(loaded.encoder);
  const SentenceTransformerModules& m = impl->modules;
  Encoder& enc = *impl->encoder;
  prepare_module_for_inference(enc);

  impl->pooling = !options.pooling.empty() ? options.pooling
                  : !m.pooling.empty()     ? m.pooling
                                           : std::vector<PoolingMode>{PoolingMode::mean};
  impl->dense = load_dense_layers(m, enc.hidden_size(), static_cast<int64_t>(impl->pooling.size()));
  const int64_t dim = impl->dense.empty() ? enc.hidden_size() * static_cast<int64_t>(impl->pooling.size())
                                          : impl->dense.back()->config().out;
  impl->dimension = dim;
  impl->normalize = m.has_modules_json ? m.normalize : true;

  if (options.load_tokenizer) {
    const fs::path tok_dir = options.tokenizer_dir.empty() ? m.transformer_dir : options.tokenizer_dir;
    impl->tok = load_tokenizer(tok_dir);
    if (!impl->tok && !options.tokenizer_dir.empty()) {
      throw IoError("'" + tok_dir.string() + "' has no tokenizer (tokenizer.json, tokenizer.model or vocab.txt)");
    }
  }
  int64_t limit = enc.max_length();
  if (m.max_seq_length) {
    limit = std::min(limit, *m.max_seq_length);
  } else if (impl->tok && impl->tok->config().model_max_length) {
    limit = std::min<int64_t>(limit, static_cast<int64_t>(*impl->tok->config().model_max_length));
  }
  impl->max_length = limit;
  return Embedder(std::move(impl));
}

Tensor Embedder::Impl::hidden(const TokenBatch& batch) const {
  check_batch(*encoder, batch);
  if (device.is_cpu()) return encoder->forward(batch);
  TokenBatch on_device = batch;
  on_device.ids = batch.ids.to(device);
  if (batch.type_ids.defined()) on_device.type_ids = batch.type_ids.to(device);
  return encoder->forward(on_device).to(Device::cpu());
}

Tensor Embedder::Impl::project(const Tensor& h, const std::vector<int64_t>& lengths) const {
  Tensor x = pool(h, lengths, pooling);
  for (const auto& d : dense) x = d->forward(x);
  return x;
}

Tensor Embedder::last_hidden_state(const TokenBatch& batch) const { return impl_->hidden(batch); }

Tensor Embedder::pool_and_project(const Tensor& hidden, const std::vector<int64_t>& lengths) const {
  return impl_->project(hidden, lengths);
}

Embeddings Embedder::Impl::run(std::vector<TokenInput> inputs, size_t truncated, const EmbedOptions& o) const {
  if (o.dimensions < 0 || o.dimensions > dimension) {
    throw InvalidArgument("embed: dimensions " + std::to_string(o.dimensions) + " is outside [1, " +
                          std::to_string(dimension) + "]");
  }
  Tensor values = run_in_batches(
      inputs, encoder->pad_id(), o.max_batch_tokens,
      [&](const TokenBatch& batch) { return project(hidden(batch), batch.lengths); },
      o.progress);
  if (o.dimensions > 0 && o.dimensions < dimension) values = values.slice(1, 0, o.dimensions).contiguous();
  if (o.normalize.value_or(normalize)) values = l2_normalize_rows(values);
  return {values, truncated};
}

Embeddings Embedder::embed(std::span<const std::string> texts, const EmbedOptions& options) const {
  const tokenizer::Tokenizer& tok = tokenizer();
  const SentenceTransformerModules& m = impl_->modules;
  const std::string name = options.prompt_name.empty() ? m.default_prompt_name : options.prompt_name;
  std::string prompt;
  if (!name.empty()) {
    auto it = m.prompts.find(name);
    if (it == m.prompts.end()) {
      std::string known;
      for (const auto& [k, _] : m.prompts) known += (known.empty() ? "" : ", ") + k;
      throw InvalidArgument("prompt '" + name + "' is not in config_sentence_transformers.json (prompts: " +
                            (known.empty() ? "none" : known) + ")");
    }
    prompt = it->second;
    if (!m.include_prompt && !prompt.empty()) {
      throw Unsupported("the Pooling module excludes prompt tokens (include_prompt false): not supported");
    }
  }
  std::vector<TokenInput> inputs(texts.size());
  size_t truncated = 0;
  tokenizer::BatchOptions cut;
  cut.max_length = static_cast<size_t>(impl_->max_length);
  cut.pad = false;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string text = prompt + texts[i];
    tokenizer::Encoding e = tok.encode_full(text);
    if (static_cast<int64_t>(e.ids.size()) > impl_->max_length) {
      ++truncated;
      tokenizer::BatchEncoding b = tok.encode_batch(std::span<const std::string>(&text, 1), cut);
      e.ids = b.ids[0];
      e.type_ids = b.type_ids[0];
    }
    if (e.ids.empty()) throw InvalidArgument("embed: text " + std::to_string(i) + " encodes to no tokens");
    inputs[i] = {std::move(e.ids), std::move(e.type_ids)};
  }
  return impl_->run(std::move(inputs), truncated, options);
}

Embeddings Embedder::embed_tokens(std::span<const std::vector<int32_t>> ids, const EmbedOptions& options) const {
  std::vector<TokenInput> inputs(ids.size());
  size_t truncated = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    inputs[i].ids = ids[i];
    if (truncate_input(inputs[i], impl_->max_length)) ++truncated;
  }
  return impl_->run(std::move(inputs), truncated, options);
}

int64_t Embedder::dimension() const { return impl_->dimension; }
int64_t Embedder::max_length() const { return impl_->max_length; }
bool Embedder::normalizes() const { return impl_->normalize; }
const std::vector<PoolingMode>& Embedder::pooling() const { return impl_->pooling; }
const std::string& Embedder::model_type() const { return impl_->encoder->model_type(); }
const SentenceTransformerModules& Embedder::modules() const { return impl_->modules; }
bool Embedder::has_tokenizer() const { return impl_->tok != nullptr; }

const tokenizer::Tokenizer& Embedder::tokenizer() const {
  if (!impl_->tok) {
    throw InvalidArgument("'" + impl_->modules.transformer_dir.string() +
                          "' has no tokenizer (tokenizer.json, tokenizer.model or vocab.txt): embed token ids instead");
  }
  return *impl_->tok;
}

}  // namespace lmx::models::embed
