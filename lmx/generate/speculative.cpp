#include "lmx/generate/speculative.h"

#include <algorithm>
#include <chrono>

#include "lmx/base/error.h"
#include "lmx/generate/token_iterator.h"

namespace lmx::generate {
namespace {

// The draft samples with its own generator, so its draws and the acceptance draws are
// independent.
GenerateParameters draft_parameters(const GenerateParameters& p) {
  GenerateParameters d = p;
  if (d.seed) d.seed = *d.seed + 1;
  return d;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Row `i` of logits [1, rows, vocab] as a host vector.
std::vector<float> logits_row(const Tensor& logits, int64_t i) {
  Tensor row = logits.select(1, i).select(0, 0).contiguous();
  if (!row.device().is_cpu()) row = row.to(Device::cpu());
  return std::vector<float>(row.data<float>(), row.data<float>() + row.numel());
}

models::LanguageModel& checked_draft(const SpeculativeOptions& o) {
  if (!o.draft_model) throw InvalidArgument("speculative decoding: no draft model");
  return *o.draft_model;
}

}  // namespace

SpeculativeDecoder::SpeculativeDecoder(models::LanguageModel& main, nn::KVCacheList& main_cache,
                                       TokenSampler& sampler, const GenerateParameters& params,
                                       const SpeculativeOptions& options, const std::vector<int32_t>& prompt)
    : main_(main),
      main_cache_(main_cache),
      sampler_(sampler),
      params_(params),
      draft_(checked_draft(options)),
      num_draft_(options.num_draft_tokens),
      draft_cache_(make_cache(draft_, params)),
      draft_sampler_(draft_parameters(params), prompt) {
  if (num_draft_ < 1) {
    throw InvalidArgument("--num-draft-tokens must be >= 1, got " + std::to_string(num_draft_));
  }
  if (draft_.vocab_size() > main_.vocab_size()) {
    throw InvalidArgument("--draft-model: its vocabulary (" + std::to_string(draft_.vocab_size()) +
                          " tokens) is larger than the main model's (" + std::to_string(main_.vocab_size()) +
                          "); the two models must share a tokenizer");
  }
  if (params.logprobs || params.top_logprobs > 0) {
    throw InvalidArgument("speculative decoding does not report logprobs; drop --draft-model or --top-logprobs");
  }
}

std::vector<int32_t> SpeculativeDecoder::round(int32_t last, int64_t max_new) {
  if (!can_trim_cache(main_cache_) || !can_trim_cache(draft_cache_)) {
    throw Unsupported("speculative decoding: a KV cache cannot be trimmed back (a rotating cache that wrapped: "
                      "raise --max-kv-size or drop it)");
  }
  const int64_t n_draft = std::min<int64_t>(num_draft_, std::max<int64_t>(max_new, 1) - 1);

  // Draft n_draft tokens one at a time, keeping the distribution each was drawn from.
  auto t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> drafts;
  std::vector<std::vector<double>> q;
  std::vector<int32_t> feed;
  if (draft_backlog_ >= 0) feed.push_back(draft_backlog_);
  feed.push_back(last);
  for (int64_t i = 0; i < n_draft; ++i) {
    Tensor ids = Tensor::from_vector(feed, {1, static_cast<int64_t>(feed.size())});
    Tensor logits = draft_.forward(ids, &draft_cache_, {.last_position_only = true});
    maybe_quantize_kv_cache(draft_cache_, params_);
    std::vector<float> row = logits_row(logits, 0);
    q.push_back(draft_sampler_.probabilities(row, drafts));
    drafts.push_back(draft_sampler_.draw(q.back()));
    feed = {drafts.back()};
  }
  stats_.draft_seconds += seconds_since(t0);

  // Score `last` and every draft in one pass of the main model.
  t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> verify{last};
  verify.insert(verify.end(), drafts.begin(), drafts.end());
  Tensor logits = main_.forward(Tensor::from_vector(verify, {1, static_cast<int64_t>(verify.size())}), &main_cache_);
  std::vector<int32_t> out;
  for (int64_t i = 0; i <= n_draft; ++i) {
    std::vector<float> row = logits_row(logits, i);
    std::vector<double> p = sampler_.probabilities(row, out);
    if (i == n_draft) {  // every draft accepted: one more token from the main model
      out.push_back(sampler_.draw(p));
      break;
    }
    const int32_t x = drafts[static_cast<size_t>(i)];
    const std::vector<double>& qi = q[static_cast<size_t>(i)];
    const double px = p[static_cast<size_t>(x)], qx = qi[static_cast<size_t>(x)];
    if (sampler_.uniform() * qx < px) {  // u < p(x) / q(x), with q(x) > 0 (x was drawn from q)
      out.push_back(x);
      continue;
    }
    // Rejected: draw from the part of p that q does not cover.
    std::vector<double> residual(p.size());
    double mass = 0;
    for (size_t j = 0; j < p.size(); ++j) mass += residual[j] = std::max(0.0, p[j] - (j < qi.size() ? qi[j] : 0.0));
    out.push_back(sampler_.draw(mass > 0 ? residual : p));  // p == q up to rounding: nothing left but p
    break;
  }
  stats_.verify_seconds += seconds_since(t0);

  const int64_t accepted = static_cast<int64_t>(out.size()) - 1;
  for (int32_t t : out) {
    sampler_.record(t);
    draft_sampler_.record(t);
  }
  // The main cache holds last + every draft; keep last + the accepted ones. The draft's
  // holds the backlog, last and all drafts but the final one.
  trim_cache(main_cache_, n_draft - accepted);
  trim_cache(draft_cache_, std::max<int64_t>(n_draft - accepted - 1, 0));
  draft_backlog_ = accepted == n_draft && n_draft > 0 ? drafts.back() : -1;
  ++stats_.rounds;
  stats_.drafted += n_draft;
  stats_.accepted += accepted;
  return out;
}

}  // namespace lmx::generate
