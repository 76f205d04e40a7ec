#include "lmx/generate/batch_scheduler.h"

#include <algorithm>

#include "lmx/base/error.h"
#include "lmx/generate/batch_kv_cache.h"
#include "lmx/generate/device_greedy.h"
#include "lmx/generate/simple_kv_cache.h"
#include "lmx/generate/wired_memory_estimate.h"
#include "lmx/nn/state_cache.h"

namespace lmx::generate {

using Clock = std::chrono::steady_clock;

namespace {

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

const models::ForwardOptions kLastPositionOnly{nullptr, true};

// The most prompt tokens of several sequences run in one prefill pass on the CPU. Below
// the CPU's packed GEMM threshold (kMinGemmRows, 64): the rows run the matvec kernels they
// run alone (the same bits, so batched equals alone), and on the 2-core AVX-512 machine
// of docs/performance.md a 210-row pass through the GEMM took 16 s where the few-row
// matvec takes ~53 ms a row (Llama-3.2-1B shape, 4-bit).
constexpr int64_t kPrefillGroupTokens = 63;
// On a GPU a pass of many rows costs little more than one of a few (32 unique prompts of
// ~30 tokens took 16 passes at the CPU's budget: 0.23 s to the last first token, session
// 18): up to this many tokens, padding included, as llama-server's default micro-batch.
constexpr int64_t kDevicePrefillGroupTokens = 512;

// Positions a prefill cache is allocated for: what the prompt needs, rounded up to this
// (its keys move into the batch's cache once the prompt is prefilled). The default step
// of 256 positions gave each 28-token prompt of a 32-stream run 16 MB of fresh buffers,
// zeroed (Llama-3.2-1B shape); with take_token's per-token logits copies they were most
// of the page faults of that run, and the kernel's page clearing was 7% of its profile.
constexpr int64_t kPrefillCacheStep = 16;
int64_t prefill_cache_step(int64_t positions) {
  return std::max<int64_t>(kPrefillCacheStep, (positions + kPrefillCacheStep - 1) / kPrefillCacheStep * kPrefillCacheStep);
}

}  // namespace

struct BatchScheduler::Sequence {
  std::shared_ptr<ScheduledGroup> group;
  size_t index = 0;
  std::vector<int32_t> prompt;
  std::vector<int32_t> identity;      // the prefix cache's keys of the prompt's tokens
  models::vlm::ImageInputs images;    // fed with the call that holds the placeholders
  int64_t first_image = -1;           // the first placeholder's index (-1: no images)
  int64_t position_shift = 0;         // VisionLanguageModel::position_shift after its last call
  GenerateParameters params;
  GenerateOptions options;
  std::unique_ptr<TokenSampler> sampler;
  std::unique_ptr<TextStream> text;
  nn::KVCacheList cache;  // the prefill's, until the sequence joins the batch
  int64_t prefilled = 0;  // of the prompt's tokens (the pass of its last chunk gives the first token)
  int64_t cached = 0;     // of those, taken from the prefix cache (never the last one)
  bool reuse_prefix = false;
  PrefixLease lease;  // the prefix-cache blocks it uses or stored, held while it lives
  std::vector<int32_t> sampled;  // the tokens it generated (with reuse_prefix only)
  int32_t next_token = -1;
  int64_t generated = 0;
  Clock::time_point started, first_token;
  // Wired-memory admission: the ticket's size, and the ticket while it is held (its end
  // comes with the sequence's).
  size_t kv_bytes = 0;
  struct Admission {
    std::unique_ptr<WiredLimitGuard> guard;
    std::atomic<size_t>* admitted = nullptr;
    // Ends the ticket (idempotent): finish() calls it before the sequence's last event,
    // so whoever sees the end finds the memory already given back.
    void release() {
      if (guard && admitted) admitted->fetch_sub(guard->ticket().size());
      guard.reset();
    }
    ~Admission() { release(); }
  } admission;
};

// ---- ScheduledGroup

std::optional<ScheduledGroup::Event> ScheduledGroup::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [&] { return !events_.empty() || open_ == 0; });
  if (events_.empty()) return std::nullopt;
  Event e = std::move(events_.front());
  events_.pop_front();
  return e;
}

void ScheduledGroup::push(size_t index, GenerationEvent e) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (e.kind == GenerationEvent::Kind::info) --open_;
    events_.push_back({index, std::move(e), Clock::now()});
  }
  cv_.notify_all();
}

void ScheduledGroup::fail(const std::string& message) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (error_.empty()) error_ = message;
}

std::string ScheduledGroup::error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return error_;
}

// ---- BatchScheduler

BatchScheduler::BatchScheduler(std::shared_ptr<ModelContainer> model, SchedulerOptions options)
    : container_(model), model_(model->model()), tok_(&model->tokenizer()), options_(options) {
  start();
}

BatchScheduler::BatchScheduler(models::LanguageModel& model, const tokenizer::Tokenizer* tok, SchedulerOptions options)
    : model_(model), tok_(tok), options_(options) {
  start();
}

void BatchScheduler::start() {
  if (options_.max_concurrent == 0) throw InvalidArgument("BatchScheduler: max_concurrent must be >= 1");
  vlm_ = dynamic_cast<models::vlm::VisionLanguageModel*>(&model_);
  for (auto& p : model_.parameters()) {
    if (!p.tensor->defined()) continue;
    prefill_group_tokens_ = p.tensor->device().is_cpu() ? kPrefillGroupTokens : kDevicePrefillGroupTokens;
    break;
  }
  if (options_.prefix_cache_bytes > 0)
    prefix_cache_ = std::make_unique<PrefixKVStore>(options_.prefix_cache_bytes, options_.prefix_block_tokens,
                                                    options_.prefix_partial_blocks);
  worker_ = std::thread([this] { work(); });
}

BatchScheduler::~BatchScheduler() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  worker_.join();
  for (auto& s : rows_) finish(*s, StopReason::cancelled, true);
  for (auto& s : prefilling_) finish(*s, StopReason::cancelled, true);
  for (auto& s : waiting_) finish(*s, StopReason::cancelled, true);
}

std::shared_ptr<ScheduledGroup> BatchScheduler::submit(std::vector<ScheduledRequest> requests,
                                                       std::optional<Clock::time_point> deadline) {
  if (requests.empty()) throw InvalidArgument("BatchScheduler::submit: no sequences");
  const int64_t vocab = model_.vocab_size();
  auto group = std::make_shared<ScheduledGroup>();
  group->deadline_ = deadline;
  group->open_ = requests.size();
  std::vector<std::unique_ptr<Sequence>> seqs;
  for (size_t i = 0; i < requests.size(); ++i) {
    ScheduledRequest& r = requests[i];
    if (r.prompt.empty()) throw InvalidArgument("generate: the prompt has no tokens");
    for (size_t k = 0; k < r.prompt.size(); ++k) {
      if (r.prompt[k] < 0 || r.prompt[k] >= vocab) {
        throw InvalidArgument("generate: prompt token " + std::to_string(r.prompt[k]) + " at position " +
                              std::to_string(k) + " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
      }
    }
    if (r.params.max_tokens && *r.params.max_tokens < 0)
      throw InvalidArgument("max_tokens must be >= 0, got " + std::to_string(*r.params.max_tokens));
    if (r.params.prefill_step_size <= 0) throw InvalidArgument("prefill_step_size must be positive");
    if (r.params.kv_bits || r.params.max_kv_size)
      throw InvalidArgument("BatchScheduler: kv_bits and max_kv_size are not supported in a batch (rows keep f32 keys)");
    if (!r.identity.empty() && r.identity.size() != r.prompt.size())
      throw InvalidArgument("BatchScheduler: the prompt has " + std::to_string(r.prompt.size()) + " tokens but " +
                            std::to_string(r.identity.size()) + " identities");
    auto s = std::make_unique<Sequence>();
    if (!r.images.empty()) {
      if (!vlm_) throw InvalidArgument(model_.model_type() + " is not a vision-language model: it takes no images");
      const auto image = static_cast<int32_t>(vlm_->image_token_id());
      const auto first = std::find(r.prompt.begin(), r.prompt.end(), image);
      if (first == r.prompt.end() || r.prompt.back() == image)
        throw InvalidArgument("generate: a prompt with images must hold their placeholders before its last token");
      s->first_image = first - r.prompt.begin();
    }
    s->identity = r.identity.empty() ? r.prompt : std::move(r.identity);
    s->images = std::move(r.images);
    s->group = group;
    s->index = i;
    s->params = std::move(r.params);
    if (tok_) default_xtc_special_tokens(s->params, *tok_, r.options.eos_ids);
    s->options = std::move(r.options);
    s->sampler = std::make_unique<TokenSampler>(s->params, r.prompt);
    if (tok_) s->text = std::make_unique<TextStream>(*tok_, s->options);
    s->prompt = std::move(r.prompt);
    if (options_.admission_policy)
      s->kv_bytes = estimate_memory(model_, static_cast<int64_t>(s->prompt.size()), s->params).kv_bytes;
    seqs.push_back(std::move(s));
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& s : seqs) waiting_.push_back(std::move(s));
  }
  cv_.notify_all();
  return group;
}

SchedulerStats BatchScheduler::stats() const {
  SchedulerStats s;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    s.waiting = waiting_.size();
  }
  s.prefilling = prefilling_count_.load();
  s.rows = row_count_.load();
  s.steps = steps_.load();
  s.step_rows = step_rows_.load();
  s.prefill_tokens = prefill_tokens_.load();
  s.prefill_passes = prefill_passes_.load();
  s.prefill_seconds = static_cast<double>(prefill_ns_.load()) * 1e-9;
  s.decode_seconds = static_cast<double>(decode_ns_.load()) * 1e-9;
  if (prefix_cache_) s.prefix_cache = prefix_cache_->stats();
  s.admitted_kv_bytes = admitted_kv_bytes_.load();
  s.admission_refusals = admission_refusals_.load();
  return s;
}

void BatchScheduler::work() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      const auto ready = [&] {
        return stopping_ || (!waiting_.empty() && !admission_blocked_) || !prefilling_.empty() || !rows_.empty();
      };
      if (admission_blocked_) {
        cv_.wait_for(lock, kAdmissionRetry, ready);
      } else {
        cv_.wait(lock, ready);
      }
      if (stopping_) return;
      admit_waiting();
    }
    prefilling_count_.store(prefilling_.size());
    if (prefilling_.empty() && rows_.empty()) continue;
    try {
      if (container_) {
        container_->perform([&](models::LanguageModel&, const tokenizer::Tokenizer&) { step(); });
      } else {
        step();
      }
    } catch (const std::exception& e) {
      fail_all(e.what());  // the worker lives on for the next requests
    }
  }
}

void BatchScheduler::admit_waiting() {
  admission_blocked_ = false;
  while (!waiting_.empty() && rows_.size() + prefilling_.size() < options_.max_concurrent) {
    Sequence& s = *waiting_.front();
    // A cancelled sequence needs no memory: step() ends it.
    if (options_.admission_policy && !s.admission.guard && !s.group->cancelled()) {
      try {
        // A zero timeout: admitted now, or Cancelled (ask again later), or OutOfMemory.
        s.admission.guard = std::make_unique<WiredLimitGuard>(
            WiredTicket(s.kv_bytes, options_.admission_policy, TicketKind::active, options_.wired_manager),
            std::stop_token{}, std::chrono::milliseconds(0));
        s.admission.admitted = &admitted_kv_bytes_;
        admitted_kv_bytes_.fetch_add(s.kv_bytes);
      } catch (const Cancelled&) {
        admission_blocked_ = true;
        admission_refusals_.fetch_add(1);
        return;
      } catch (const OutOfMemory& e) {
        auto failed = std::move(waiting_.front());
        waiting_.pop_front();
        failed->group->out_of_memory_.store(true);
        failed->group->fail(e.what());
        finish(*failed, StopReason::cancelled, false);
        continue;
      }
    }
    prefilling_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
}

void BatchScheduler::step() {
  const Clock::time_point now = Clock::now();
  auto expired = [&](Sequence& s) {
    if (s.group->cancelled()) return true;
    if (s.group->deadline_ && now >= *s.group->deadline_) {
      s.group->timed_out_.store(true);
      return true;
    }
    return false;
  };
  for (size_t r = rows_.size(); r-- > 0;) {
    if (expired(*rows_[r])) {
      auto s = take_row(r);
      finish(*s, StopReason::cancelled, true);
    }
  }
  for (size_t i = prefilling_.size(); i-- > 0;) {
    if (expired(*prefilling_[i])) {
      auto s = take_prefilling(i);
      finish(*s, StopReason::cancelled, true);
    }
  }
  auto timed = [](std::atomic<uint64_t>& total, auto&& run) {
    const Clock::time_point t0 = Clock::now();
    run();
    total.fetch_add(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()));
  };
  if (!prefilling_.empty()) timed(prefill_ns_, [&] { prefill_chunk(); });
  if (!rows_.empty()) timed(decode_ns_, [&] { decode(); });
}

void BatchScheduler::begin_prefill(Sequence& s) {
  s.started = Clock::now();
  // Plain caches on every layer (windowed ones too: the batch cache masks by window).
  // Recurrent layers keep their own state cache.
  const int64_t step = prefill_cache_step(static_cast<int64_t>(s.prompt.size()));
  s.cache = batch_row_caches(model_, step);
  s.reuse_prefix = prefix_cache_ && PrefixKVStore::reusable(model_, s.cache);
  // The last prompt token is always run: its logits give the first token.
  const int64_t seedable = std::min(static_cast<int64_t>(s.prompt.size()) - 1, cacheable(s));
  if (s.reuse_prefix && seedable > 0) {
    s.cached = prefix_cache_->seed(std::span<const int32_t>(s.identity.data(), static_cast<size_t>(seedable)),
                                   s.cache, s.lease, step);
    s.prefilled = s.cached;
  }
}

int64_t BatchScheduler::chunk_length(const Sequence& s) const {
  // Balanced chunks of what is left, as the single-sequence token loop cuts them; the
  // placeholders of every image in one call.
  const auto n = static_cast<int64_t>(s.prompt.size());
  const int64_t todo = n - s.cached;
  const int64_t chunks = (todo + s.params.prefill_step_size - 1) / s.params.prefill_step_size;
  const int64_t chunk = (todo + chunks - 1) / chunks;
  const bool images = !s.images.empty() && s.prefilled + chunk > s.first_image;
  return images ? n - s.prefilled : std::min(chunk, n - s.prefilled);
}

bool BatchScheduler::batchable(const Sequence& s) const {
  if (vlm_ || s.cache.empty()) return false;
  for (const auto& c : s.cache)
    if (!dynamic_cast<const SimpleKVCache*>(c.get())) return false;  // state caches: alone
  return true;
}

bool BatchScheduler::waits_for_prefix(const Sequence& t, const std::vector<size_t>& group) const {
  if (!prefix_cache_ || !t.cache.empty()) return false;
  const auto block = static_cast<int64_t>(options_.prefix_block_tokens);
  if (std::min<int64_t>(static_cast<int64_t>(t.prompt.size()) - 1, cacheable(t)) < block) return false;  // as begin_prefill seeds
  for (size_t i : group) {
    const Sequence& s = *prefilling_[i];
    // s stores that first block after this chunk or a later one, and t would seed it then
    // instead of computing it now (beginning t now would seed nothing: it could not reuse
    // the block later).
    if (s.reuse_prefix && s.cached < block && static_cast<int64_t>(s.identity.size()) >= block &&
        std::equal(t.identity.begin(), t.identity.begin() + block, s.identity.begin()))
      return true;
  }
  return false;
}

void BatchScheduler::prefill_chunk() {
  models::LanguageModel& model = model_;
  std::vector<size_t> group{0};  // indices into prefilling_, ascending
  nn::KVCacheList batch;         // the group's caches when it has several sequences
  // Per member of the group once its prompt is prefilled: joins the batch, or ends with
  // its first token (or at once with max_tokens 0).
  std::vector<std::optional<Stop>> ends;
  try {
    Sequence& s = *prefilling_.front();
    if (s.cache.empty()) begin_prefill(s);
    int64_t len = s.prefilled < static_cast<int64_t>(s.prompt.size()) ? chunk_length(s) : 0;
    std::vector<int64_t> lens{len};  // each member's chunk
    // Others at the same point of a prompt whose next chunk has the same length run in
    // the same forward pass, up to prefill_group_tokens_ tokens in all: one pass over the
    // weights for all of them. At the start of their prompts (nothing cached) chunks of
    // other lengths join too, left-padded to the longest (the batch cache masks the
    // padding and gives each row its own positions), with at most as many padding tokens
    // as real ones.
    if (len > 0 && batchable(s)) {
      int64_t tokens = len;
      const int64_t budget = std::min<int64_t>(prefill_group_tokens_, s.params.prefill_step_size);
      for (size_t i = 1; i < prefilling_.size() && tokens < budget; ++i) {
        Sequence& t = *prefilling_[i];
        if (waits_for_prefix(t, group)) continue;
        if (t.cache.empty()) begin_prefill(t);
        if (!batchable(t) || t.prefilled != s.prefilled || t.prefilled >= static_cast<int64_t>(t.prompt.size())) continue;
        const int64_t lt = chunk_length(t), width = std::max(len, lt);
        const auto padded = static_cast<int64_t>(group.size() + 1) * width;
        if ((lt != len || width != len) && s.prefilled != 0) continue;
        if (padded > budget || padded > 2 * (tokens + lt)) continue;
        group.push_back(i);
        lens.push_back(lt);
        tokens += lt;
        len = width;  // the pass's length from here on
      }
    }
    const auto rows = static_cast<int64_t>(group.size());
    Tensor logits;  // [rows, 1, vocab]: each row's last position
    if (len > 0) {
      std::vector<int32_t> ids;
      std::vector<int64_t> pads;
      for (size_t j = 0; j < group.size(); ++j) {
        const Sequence& t = *prefilling_[group[j]];
        pads.push_back(len - lens[j]);
        ids.insert(ids.end(), static_cast<size_t>(pads.back()), 0);  // masked
        ids.insert(ids.end(), t.prompt.begin() + t.prefilled, t.prompt.begin() + t.prefilled + lens[j]);
      }
      if (rows == 1) {
        if (vlm_) vlm_->set_position_shifts({s.position_shift});
        if (!s.images.empty() && s.prefilled + len > s.first_image) {
          vlm_->set_images(std::move(s.images));
          s.images = {};
        }
        logits = model.forward(Tensor::from_vector(ids, {1, len}), &s.cache, kLastPositionOnly);
        if (vlm_) s.position_shift = vlm_->position_shift();
      } else {
        if (s.prefilled == 0) {
          // Fresh rows, left-padded to the longest chunk.
          for (size_t l = 0; l < s.cache.size(); ++l)
            batch.push_back(std::make_unique<BatchKVCache>(pads, prefill_cache_step(len)));
        } else {
          // One batch (every row is at the same position, no padding) seeded with what the
          // rows hold (prefix-cache blocks).
          std::vector<std::vector<std::vector<Tensor>>> held;
          for (size_t i : group) {
            std::vector<std::vector<Tensor>> layers;
            for (const auto& c : prefilling_[i]->cache) layers.push_back(c->state());
            held.push_back(std::move(layers));
          }
          join_batch_rows(batch, held, prefill_cache_step(s.prefilled + len));
        }
        logits = model.forward(Tensor::from_vector(ids, {rows, len}), &batch, kLastPositionOnly);
      }
      int64_t real = 0;
      for (size_t j = 0; j < group.size(); ++j) {
        prefilling_[group[j]]->prefilled += lens[j];
        real += lens[j];
      }
      prefill_tokens_.fetch_add(static_cast<uint64_t>(real));
      prefill_passes_.fetch_add(1);
    }
    // Those whose prompt is prefilled store it in the prefix cache, take their first
    // token from this pass's logits and join the batch (all at once: a join copies the
    // batch's keys and values).
    std::vector<std::vector<std::vector<Tensor>>> joining;
    ends.resize(group.size());
    std::vector<TokenSampler*> samplers;  // of the rows that take a token now (else null)
    for (size_t i : group) {
      const Sequence& t = *prefilling_[i];
      const bool takes = t.prefilled >= static_cast<int64_t>(t.prompt.size()) &&
                         !(t.params.max_tokens && *t.params.max_tokens == 0);
      samplers.push_back(takes ? t.sampler.get() : nullptr);
    }
    const std::vector<int32_t> chosen = pick_greedy_on_device(logits, samplers, row_scratch_);
    Tensor host;
    for (int64_t r = 0; r < rows; ++r) {
      Sequence& t = *prefilling_[group[static_cast<size_t>(r)]];
      std::vector<std::vector<Tensor>> layers;
      for (size_t l = 0; l < t.cache.size(); ++l)
        layers.push_back(rows == 1 ? t.cache[l]->state() : batch[l]->row_state(r));
      const auto n = static_cast<int64_t>(t.prompt.size());
      if (t.prefilled < n) {  // more chunks: its own caches keep the keys and values
        if (rows > 1) {
          t.cache = batch_row_caches(model_, prefill_cache_step(static_cast<int64_t>(t.prompt.size())));
          for (size_t l = 0; l < layers.size(); ++l) t.cache[l]->update_and_fetch(layers[l][0], layers[l][1]);
        }
        continue;
      }
      if (t.reuse_prefix) {
        const int64_t stored = std::min(n, cacheable(t));
        if (stored > 0)
          prefix_cache_->store(std::span<const int32_t>(t.identity.data(), static_cast<size_t>(stored)), layers, t.lease);
      }
      auto& end = ends[static_cast<size_t>(r)];
      if (t.params.max_tokens && *t.params.max_tokens == 0) {
        end = Stop{StopReason::length, true};
        continue;
      }
      end = take_token(t, host_row(logits, r, chosen, host), logits.dim(2),
                       chosen.empty() ? -1 : chosen[static_cast<size_t>(r)]);
      if (end) continue;
      if (rows == 1) {
        join_batch_row(batch_cache_, t.cache);  // state caches too
      } else {
        joining.push_back(std::move(layers));
      }
    }
    if (!joining.empty()) join_batch_rows(batch_cache_, joining);
  } catch (const std::exception& e) {
    for (size_t i = group.size(); i-- > 0;) {
      auto failed = take_prefilling(group[i]);
      failed->group->fail(e.what());
      finish(*failed, StopReason::cancelled, false);
    }
    return;
  }
  for (size_t j = 0, taken = 0; j < group.size(); ++j) {
    const size_t i = group[j] - taken;
    Sequence& t = *prefilling_[i];
    if (t.prefilled < static_cast<int64_t>(t.prompt.size())) continue;
    ++taken;
    if (ends[j]) {
      finish(*take_prefilling(i), ends[j]->reason, ends[j]->flush);
      continue;
    }
    t.cache.clear();
    rows_.push_back(take_prefilling(i));
  }
  row_count_.store(rows_.size());
}

int64_t BatchScheduler::cacheable(const Sequence& s) const {
  if (s.first_image < 0) return static_cast<int64_t>(s.identity.size());
  return vlm_->image_calls_need_whole_prompt() ? 0 : s.first_image;
}

const float* BatchScheduler::host_row(const Tensor& logits, int64_t r, const std::vector<int32_t>& chosen,
                                      Tensor& host) const {
  if (!chosen.empty() && chosen[static_cast<size_t>(r)] >= 0) return nullptr;
  if (chosen.empty()) {  // every row: one copy
    if (!host.defined()) host = logits.contiguous().to(Device::cpu());
    return host.data<float>() + r * logits.dim(-1);
  }
  host = logits.select(0, r).contiguous().to(Device::cpu());  // the one row the device left undecided
  return host.data<float>();
}

std::optional<BatchScheduler::Stop> BatchScheduler::take_token(Sequence& s, const float* logits, int64_t vocab,
                                                               int32_t chosen) {
  // A buffer kept across calls: a fresh 128K-float vector per token was a fresh mmap whose
  // pages the kernel cleared, token after token.
  int32_t token = chosen;
  if (logits) {
    std::vector<float>& row = row_scratch_;
    row.assign(logits, logits + vocab);
    try {
      token = s.sampler->sample(row);  // runs the request's logits processors
    } catch (const std::exception& e) {
      s.group->fail(e.what());  // this sequence ends; the others go on
      return Stop{StopReason::cancelled, false};
    }
  }
  if (++s.generated == 1) s.first_token = Clock::now();
  if (s.reuse_prefix) s.sampled.push_back(token);
  if (s.options.token_events) {
    GenerationEvent t;
    t.kind = GenerationEvent::Kind::token;
    t.token = s.sampler->logprob(token);
    s.group->push(s.index, std::move(t));
  }
  if (s.options.eos_ids.count(token)) return Stop{StopReason::stop, true};
  std::deque<GenerationEvent> events;
  const bool stopped = s.text && s.text->add(token, events);
  for (auto& e : events) s.group->push(s.index, std::move(e));
  if (stopped) return Stop{StopReason::stop, false};
  if (s.params.max_tokens && s.generated >= *s.params.max_tokens) return Stop{StopReason::length, true};
  s.next_token = token;
  return std::nullopt;
}

void BatchScheduler::decode() {
  models::LanguageModel& model = model_;
  const int64_t B = static_cast<int64_t>(rows_.size());
  std::vector<int32_t> ids;
  std::vector<int64_t> shifts;
  for (const auto& s : rows_) {
    ids.push_back(s->next_token);
    shifts.push_back(s->position_shift);
  }
  Tensor logits;
  std::vector<int32_t> chosen;  // the device's argmax of each row, when all sample greedily
  try {
    if (vlm_) vlm_->set_position_shifts(std::move(shifts));
    logits = model.forward(Tensor::from_vector(ids, {B, 1}), &batch_cache_, kLastPositionOnly);  // [B, 1, vocab]
    std::vector<TokenSampler*> samplers;
    for (const auto& s : rows_) samplers.push_back(s->sampler.get());
    chosen = pick_greedy_on_device(logits, samplers, row_scratch_);
  } catch (const std::exception& e) {
    fail_rows(e.what());  // the batch cannot go on
    return;
  }
  steps_.fetch_add(1);
  step_rows_.fetch_add(static_cast<uint64_t>(B));
  const int64_t vocab = logits.dim(2);
  // Ended this step: they leave the batch, then their info goes out.
  std::vector<size_t> gone;
  std::vector<Stop> stops;
  Tensor host;
  for (int64_t r = 0; r < B; ++r) {
    const auto at = static_cast<size_t>(r);
    if (auto stop = take_token(*rows_[at], host_row(logits, r, chosen, host), vocab, chosen.empty() ? -1 : chosen[at])) {
      gone.push_back(at);
      stops.push_back(*stop);
    }
  }
  if (gone.empty()) return;
  // Out of the batch at once (each removal copies the batch's keys and values).
  for (size_t i = 0; i < gone.size(); ++i)
    if (stops[i].reason != StopReason::cancelled) store_reply(gone[i]);
  std::vector<std::unique_ptr<Sequence>> ended = take_rows(gone);
  for (size_t i = 0; i < gone.size(); ++i) finish(*ended[i], stops[i].reason, stops[i].flush);
}

void BatchScheduler::store_reply(size_t r) {
  Sequence& s = *rows_[r];
  if (!s.reuse_prefix) return;
  // The row holds the prompt and every sampled token but the last (never fed back).
  if (s.first_image >= 0) return;  // its prompt's blocks up to the first image are stored already
  std::vector<int32_t> tokens = s.identity;
  tokens.insert(tokens.end(), s.sampled.begin(), s.sampled.end() - (s.sampled.empty() ? 0 : 1));
  std::vector<std::vector<Tensor>> layers;
  for (const auto& c : batch_cache_) layers.push_back(c->row_state(static_cast<int64_t>(r)));
  prefix_cache_->store(tokens, layers, s.lease);
}

void BatchScheduler::finish(Sequence& s, StopReason reason, bool flush_detokenizer) {
  s.admission.release();
  std::deque<GenerationEvent> events;
  if (s.text) s.text->end(flush_detokenizer, events);
  for (auto& e : events) s.group->push(s.index, std::move(e));
  GenerationEvent info;
  info.kind = GenerationEvent::Kind::info;
  GenerationInfo& i = info.info;
  const Clock::time_point now = Clock::now();
  i.prompt_tokens = static_cast<int64_t>(s.prompt.size()) - s.cached;
  i.cached_prompt_tokens = s.cached;
  i.generated_tokens = s.generated;
  if (s.generated > 0) {
    i.prompt_seconds = seconds_between(s.started, s.first_token);
    i.generation_seconds = seconds_between(s.first_token, now);
  }
  i.prompt_tps = i.prompt_seconds > 0 ? static_cast<double>(i.prompt_tokens) / i.prompt_seconds : 0;
  i.generation_tps = i.generation_seconds > 0 ? static_cast<double>(i.generated_tokens - 1) / i.generation_seconds : 0;
  i.stop_reason = reason;
  s.group->push(s.index, std::move(info));
}

void BatchScheduler::fail_rows(const std::string& error) {
  std::vector<std::unique_ptr<Sequence>> failed = std::move(rows_);
  rows_.clear();
  batch_cache_.clear();
  row_count_.store(0);
  for (auto& s : failed) {
    s->group->fail(error);
    finish(*s, StopReason::cancelled, false);
  }
}

void BatchScheduler::fail_all(const std::string& error) {
  fail_rows(error);
  while (!prefilling_.empty()) {
    auto s = take_prefilling(0);
    s->group->fail(error);
    finish(*s, StopReason::cancelled, false);
  }
}

std::unique_ptr<BatchScheduler::Sequence> BatchScheduler::take_row(size_t r) {
  return std::move(take_rows({r}).front());
}

std::vector<std::unique_ptr<BatchScheduler::Sequence>> BatchScheduler::take_rows(const std::vector<size_t>& gone) {
  const std::vector<int64_t> rows(gone.begin(), gone.end());
  for (auto& c : batch_cache_) {
    if (auto* state = dynamic_cast<nn::StateCache*>(c.get())) {
      for (size_t i = rows.size(); i-- > 0;) state->remove_row(rows[i]);
    } else {
      c->remove_rows(rows);  // a BatchKVCache, or a split model's of one on every rank
    }
  }
  std::vector<std::unique_ptr<Sequence>> out;
  for (size_t r : gone) out.push_back(std::move(rows_[r]));
  for (size_t i = gone.size(); i-- > 0;) rows_.erase(rows_.begin() + static_cast<std::ptrdiff_t>(gone[i]));
  row_count_.store(rows_.size());
  return out;
}

std::unique_ptr<BatchScheduler::Sequence> BatchScheduler::take_prefilling(size_t i) {
  auto s = std::move(prefilling_[i]);
  prefilling_.erase(prefilling_.begin() + static_cast<std::ptrdiff_t>(i));
  prefilling_count_.store(prefilling_.size());
  return s;
}

}  // namespace lmx::generate
