// Continuous batching: many generations share one forward pass per decode step. A
// submitted request waits until a row is free (max_concurrent rows), has its prompt
// prefilled in chunks of params.prefill_step_size (one chunk between two decode steps,
// so a long prompt does not stall the running rows; the chunks of sequences at the same
// point of their prompts run in one forward pass, and a sequence that shares a prompt
// prefix with one being prefilled waits one step to take it from the prefix cache), then
// joins the batch with its first token sampled from the logits of its prompt's last
// chunk (BatchKVCache rows join and leave between steps). Each row keeps its own parameters
// (sampler, penalties, logit bias, logits_processors), stop strings, EOS and token limit,
// and leaves when it ends, is cancelled or passes its deadline. At temperature 0 a row
// yields the tokens of generating its prompt alone.
//
// With a prefix cache (SchedulerOptions::prefix_cache_bytes > 0) a sequence about to be
// prefilled starts from the longest run of whole blocks of its prompt that an earlier
// (or running) sequence prefilled (with prefix_partial_blocks also the agreeing start of
// the next cached block), and prefills only the rest (PrefixKVStore).
//
// Vision-language models: a sequence may carry its images (ScheduledRequest::images).
// The call that feeds their placeholders holds the rest of the prompt at once; the
// prefix cache gives and takes only the tokens before the first placeholder (none for
// models whose image calls need the whole prompt, Gemma 3 / PaliGemma), keyed by the
// prompt's identities (an image's placeholders by its hash, so that no image's keys can
// ever stand for another's); each row keeps its own position shift (Qwen2-VL's M-RoPE)
// through the batch's steps.
//
// One worker thread runs the model (holding ModelContainer::perform for one step at a
// time); consumers pull each request's events from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "lmx/generate/model_container.h"
#include "lmx/generate/prefix_kv_store.h"
#include "lmx/generate/wired_memory.h"
#include "lmx/models/vlm/vision_language_model.h"

namespace lmx::generate {

struct SchedulerOptions {
  size_t max_concurrent = 8;  // rows decoded together
  // The byte budget of the prefix cache shared by the sequences; 0: none.
  size_t prefix_cache_bytes = 0;
  size_t prefix_block_tokens = PrefixKVStore::kDefaultBlockTokens;
  // Also reuse the start of a cached block (PrefixKVStore's partial_blocks): a repeated
  // prompt then prefills its last token only. Off by default: what a sequence reuses
  // then depends on which earlier replies were stored, i.e. on timing under concurrency.
  bool prefix_partial_blocks = false;
  // Wired-memory admission (docs/wired-memory.md). With a policy, the sequence at the
  // head of the queue starts its prefill only once `wired_manager` (null:
  // WiredMemoryManager::shared()) admits an active ticket of its KV-cache bytes under it
  // (estimate_memory for its prompt + max_tokens); until then it and those behind it wait
  // (first come, first served), and the manager is asked again after a sequence ends or
  // kAdmissionRetry. The ticket ends with the sequence. A sequence the manager could never
  // admit (nothing else holds a ticket) ends at once with its OutOfMemory as the error.
  // Null: no admission (max_concurrent alone bounds the work).
  std::shared_ptr<const WiredPolicy> admission_policy{};
  WiredMemoryManager* wired_manager = nullptr;
};

// One sequence to generate. options: eos_ids, stop_strings, tool calls, token_events
// (options.iterator is not used).
struct ScheduledRequest {
  std::vector<int32_t> prompt;
  GenerateParameters params;
  GenerateOptions options;
  // Vision-language models: the processor's outputs for every image whose placeholders
  // the prompt holds (expanded), and per prompt token its identity: the token, or for an
  // image placeholder a negative value from its image's hash (chat_images.h). Empty
  // identity: the tokens.
  models::vlm::ImageInputs images{};
  std::vector<int32_t> identity{};
};

// What the scheduler tells about itself (for metrics).
struct SchedulerStats {
  size_t waiting = 0;      // sequences not yet prefilling
  size_t prefilling = 0;   // sequences being prefilled
  size_t rows = 0;         // sequences in the batch
  uint64_t steps = 0;      // decode steps run
  uint64_t step_rows = 0;  // sum of the batch size over those steps
  // Prompt tokens run through prefill passes (all but those taken from the prefix cache;
  // the pass that runs a prompt's last token gives its first generated token).
  uint64_t prefill_tokens = 0;
  uint64_t prefill_passes = 0;  // forward passes of prefill (one may hold several sequences)
  // Wall seconds the worker spent in prefill passes and in decode steps (each with its
  // sampling and events): with the counts above, where a server's time goes.
  double prefill_seconds = 0;
  double decode_seconds = 0;
  PrefixCacheStats prefix_cache;  // zeros without a prefix cache
  size_t admitted_kv_bytes = 0;     // KV bytes of the admitted sequences' tickets (admission only)
  uint64_t admission_refusals = 0;  // times the queue's head was refused by the manager
};

// The events of a submitted group of sequences (n choices of one request), each tagged
// with the sequence's index; every sequence ends with its info event.
class ScheduledGroup {
 public:
  struct Event {
    size_t index = 0;
    GenerationEvent event;
    std::chrono::steady_clock::time_point at;  // when the scheduler queued it
  };
  // Blocks for the next event; nullopt once every sequence has sent its info.
  std::optional<Event> next();
  // Thread-safe: the group's rows leave the batch before the next decode step; each
  // sequence then ends with info (stop reason cancelled).
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  // Whether the deadline ended it (the stop reason is then cancelled).
  bool timed_out() const { return timed_out_.load(); }
  // The error that ended it (a failed forward pass), or empty.
  std::string error() const;
  // Whether that error is the wired-memory manager's OutOfMemory (a sequence that could
  // never be admitted, SchedulerOptions::admission_policy).
  bool out_of_memory() const { return out_of_memory_.load(); }

 private:
  friend class BatchScheduler;
  void push(size_t index, GenerationEvent e);
  void fail(const std::string& message);

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  std::string error_;
  size_t open_ = 0;  // sequences whose info is not yet queued
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> timed_out_{false};
  std::atomic<bool> out_of_memory_{false};
  std::optional<std::chrono::steady_clock::time_point> deadline_;
};

class BatchScheduler {
 public:
  // Runs the container's model (each step inside ModelContainer::perform).
  BatchScheduler(std::shared_ptr<ModelContainer> model, SchedulerOptions options);
  // Runs `model` directly (the caller keeps it alive and out of other hands while the
  // scheduler lives). Without a tokenizer the sequences produce token events only
  // (options.token_events) and no text.
  BatchScheduler(models::LanguageModel& model, const tokenizer::Tokenizer* tok, SchedulerOptions options);
  ~BatchScheduler();  // ends the waiting and running sequences (cancelled) and the worker
  BatchScheduler(const BatchScheduler&) = delete;
  BatchScheduler& operator=(const BatchScheduler&) = delete;

  // Queues the sequences as one group. Prompts are checked here (empty, or a token
  // outside the vocabulary: InvalidArgument). `deadline`: past it the group ends
  // (timed_out()).
  std::shared_ptr<ScheduledGroup> submit(std::vector<ScheduledRequest> requests,
                                         std::optional<std::chrono::steady_clock::time_point> deadline = {});
  SchedulerStats stats() const;
  const SchedulerOptions& options() const { return options_; }
  // How long a refused sequence waits before the manager is asked again when none of
  // this scheduler's sequences ended meanwhile (another user's ticket may have).
  static constexpr std::chrono::milliseconds kAdmissionRetry{20};

 private:
  struct Sequence;
  void start();
  void work();
  // Moves waiting sequences to prefilling while rows are free and the wired-memory
  // manager admits them (mutex_ held).
  void admit_waiting();
  // One iteration on the worker: drop cancelled sequences, one prefill chunk, one decode step.
  void step();
  // One prefill chunk of the first prefilling sequence, in one forward pass with the
  // others at the same point of their prompt whose next chunk has the same length, or at
  // the start of theirs (left-padded), up to prefill_group_tokens_ tokens in all; those
  // whose prompt is then prefilled join the batch.
  void prefill_chunk();
  // A sequence's caches before its first chunk, seeded from the prefix cache.
  void begin_prefill(Sequence& s);
  // The length of s's next prefill chunk.
  int64_t chunk_length(const Sequence& s) const;
  // Whether s's chunks may run batched with others' (plain KV caches, no images).
  bool batchable(const Sequence& s) const;
  // Whether fresh sequence t should wait for a sequence of `group` to store the prompt
  // prefix they share in the prefix cache (then t seeds it instead of computing it).
  bool waits_for_prefix(const Sequence& t, const std::vector<size_t>& group) const;
  void decode();
  // How a sequence ends with the token it just sampled.
  struct Stop {
    StopReason reason;
    bool flush;  // flush the detokenizer's held text
  };
  // Samples s's next token from its logits row (vocab floats; the prefill's last position
  // or a decode step's row), sends its events and says whether s ends with it (else it
  // is s's next input). With logits null, the token is `chosen`, picked and recorded by
  // s's sampler already (lmx/generate/device_greedy.h).
  std::optional<Stop> take_token(Sequence& s, const float* logits, int64_t vocab, int32_t chosen = -1);
  // Row r of logits [rows, 1, vocab] for take_token: null when the row's token was picked on
  // the device (chosen[r] >= 0), else the row on the host (all rows come back at once when
  // nothing was picked on the device, only row r otherwise; `host` keeps them).
  const float* host_row(const Tensor& logits, int64_t r, const std::vector<int32_t>& chosen, Tensor& host) const;
  // How many of a sequence's first tokens the prefix cache may give or take: all, or
  // with images those before the first placeholder (none for models whose image calls
  // need the whole prompt).
  int64_t cacheable(const Sequence& s) const;
  // Adds row r's prompt and reply (what its cache row holds) to the prefix cache.
  void store_reply(size_t r);
  // Ends a sequence: queues its held text and its info.
  void finish(Sequence& s, StopReason reason, bool flush_detokenizer);
  // Takes a sequence out of the batch (its cache row goes) or out of the prefill queue;
  // the counts stats() reads follow at once.
  std::unique_ptr<Sequence> take_row(size_t r);
  // Takes rows `gone` (ascending) out of the batch at once, in that order.
  std::vector<std::unique_ptr<Sequence>> take_rows(const std::vector<size_t>& gone);
  std::unique_ptr<Sequence> take_prefilling(size_t i);
  // Ends the batch's rows (and with fail_all the prefilling sequences too) with `error`.
  void fail_rows(const std::string& error);
  void fail_all(const std::string& error);

  std::shared_ptr<ModelContainer> container_;  // null when running a bare model
  models::LanguageModel& model_;
  models::vlm::VisionLanguageModel* vlm_ = nullptr;  // model_ when it is one
  const tokenizer::Tokenizer* tok_;
  SchedulerOptions options_;
  // Before the sequences: their leases release its blocks when they go.
  std::unique_ptr<PrefixKVStore> prefix_cache_;
  int64_t prefill_group_tokens_ = 63;  // a prefill pass's budget (more on a GPU, set in start())
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Sequence>> waiting_;  // guarded by mutex_
  bool stopping_ = false;                          // guarded by mutex_
  bool admission_blocked_ = false;                 // guarded by mutex_: the head was refused
  // Worker-only state (counts mirrored into the atomics for stats()).
  std::deque<std::unique_ptr<Sequence>> prefilling_;
  std::vector<std::unique_ptr<Sequence>> rows_;  // row r of the batch cache
  std::vector<float> row_scratch_;               // take_token's copy of a logits row
  nn::KVCacheList batch_cache_;
  std::atomic<size_t> prefilling_count_{0}, row_count_{0};
  std::atomic<uint64_t> steps_{0}, step_rows_{0}, prefill_tokens_{0}, prefill_passes_{0};
  std::atomic<uint64_t> prefill_ns_{0}, decode_ns_{0};
  std::atomic<uint64_t> admission_refusals_{0};
  std::atomic<size_t> admitted_kv_bytes_{0};
  std::thread worker_;
};

}  // namespace lmx::generate
