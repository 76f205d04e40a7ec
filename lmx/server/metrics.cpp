#include "lmx/server/metrics.h"

#include <cstdio>

#include "lmx/core/allocator.h"

namespace lmx::server {

namespace {

std::string number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void header(std::string& out, const std::string& name, const char* type, const std::string& help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void sample(std::string& out, const std::string& name, double value, const std::string& labels = "") {
  out += name + (labels.empty() ? "" : "{" + labels + "}") + " " + number(value) + "\n";
}

// One metric of one unlabelled sample.
void metric(std::string& out, const std::string& name, const char* type, const std::string& help, double value) {
  header(out, name, type, help);
  sample(out, name, value);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::write(std::string& out, const std::string& name, const std::string& help) const {
  std::lock_guard<std::mutex> lock(mutex_);
  header(out, name, "histogram", help);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    sample(out, name + "_bucket", static_cast<double>(cumulative), "le=\"" + number(bounds_[i]) + "\"");
  }
  sample(out, name + "_bucket", static_cast<double>(count_), "le=\"+Inf\"");
  sample(out, name + "_sum", sum_);
  sample(out, name + "_count", static_cast<double>(count_));
}

ServerMetrics::ServerMetrics()
    : time_to_first_token({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      inter_token({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}),
      request_duration({0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300}) {}

void ServerMetrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{endpoint, status}];
}

void ServerMetrics::add_tokens(int64_t prompt, int64_t generated) {
  std::lock_guard<std::mutex> lock(mutex_);
  prompt_tokens_ += static_cast<uint64_t>(prompt);
  generated_tokens_ += static_cast<uint64_t>(generated);
}

void ServerMetrics::count_cancelled() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++cancelled_;
}

std::string ServerMetrics::render(const generate::SchedulerStats& s, size_t admitted_requests) const {
  std::string out;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    header(out, "lmx_requests_total", "counter", "Requests answered, by endpoint and HTTP status.");
    for (const auto& [key, n] : requests_)
      sample(out, "lmx_requests_total", static_cast<double>(n),
             "endpoint=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"");
    metric(out, "lmx_prompt_tokens_total", "counter", "Prompt tokens of finished generations.",
           static_cast<double>(prompt_tokens_));
    metric(out, "lmx_generated_tokens_total", "counter", "Tokens generated.", static_cast<double>(generated_tokens_));
    metric(out, "lmx_requests_cancelled_total", "counter",
           "Requests whose client left before their end (their generation stopped).",
           static_cast<double>(cancelled_));
  }
  const MemoryStats memory = cpu_memory_stats();
  metric(out, "lmx_memory_active_bytes", "gauge",
         "CPU tensor memory handed out and not yet freed.",
         static_cast<double>(memory.active_bytes));
  metric(out, "lmx_memory_cache_bytes", "gauge",
         "Freed CPU tensor buffers kept for reuse.",
         static_cast<double>(memory.cache_bytes));
  metric(out, "lmx_requests_admitted", "gauge",
         "Requests holding a place (running or waiting).",
         static_cast<double>(admitted_requests));
  metric(out, "lmx_queue_depth", "gauge", "Sequences waiting for a batch row.", static_cast<double>(s.waiting));
  metric(out, "lmx_prefilling_sequences", "gauge", "Sequences being prefilled.", static_cast<double>(s.prefilling));
  metric(out, "lmx_batch_size", "gauge", "Sequences in the decode batch now.", static_cast<double>(s.rows));
  metric(out, "lmx_decode_steps_total", "counter", "Batched decode steps run.", static_cast<double>(s.steps));
  metric(out, "lmx_decode_step_rows_total", "counter",
         "Sum of the batch size over decode steps (divided by lmx_decode_steps_total: the mean batch size).",
         static_cast<double>(s.step_rows));
  metric(out, "lmx_prefill_tokens_total", "counter",
         "Prompt tokens run through prefill passes (not those taken from the prefix cache).",
         static_cast<double>(s.prefill_tokens));
  metric(out, "lmx_prefill_passes_total", "counter",
         "Forward passes of prefill (one may hold the chunks of several prompts).",
         static_cast<double>(s.prefill_passes));
  metric(out, "lmx_prefill_seconds_total", "counter",
         "Wall seconds the scheduler spent in prefill passes.", s.prefill_seconds);
  metric(out, "lmx_decode_seconds_total", "counter",
         "Wall seconds the scheduler spent in decode steps (with their sampling).", s.decode_seconds);
  metric(out, "lmx_admitted_kv_bytes", "gauge",
         "KV-cache bytes of the sequences the wired-memory manager admitted (--memory-budget).",
         static_cast<double>(s.admitted_kv_bytes));
  metric(out, "lmx_admission_refusals_total", "counter",
         "Times the sequence at the head of the queue did not fit the memory budget and waited.",
         static_cast<double>(s.admission_refusals));
  const generate::PrefixCacheStats& pc = s.prefix_cache;
  metric(out, "lmx_prefix_cache_lookups_total", "counter",
         "Sequences that looked for a cached prompt prefix.",
         static_cast<double>(pc.lookups));
  metric(out, "lmx_prefix_cache_hits_total", "counter",
         "Sequences that reused at least one cached block.",
         static_cast<double>(pc.hits));
  metric(out, "lmx_prefix_cache_reused_tokens_total", "counter",
         "Prompt tokens taken from the prefix cache.",
         static_cast<double>(pc.reused_tokens));
  metric(out, "lmx_prefix_cache_evictions_total", "counter",
         "Prefix-cache blocks evicted to make room.",
         static_cast<double>(pc.evictions));
  metric(out, "lmx_prefix_cache_bytes", "gauge", "Memory the prefix cache holds.", static_cast<double>(pc.bytes));
  metric(out, "lmx_prefix_cache_blocks", "gauge",
         "Token blocks the prefix cache holds.",
         static_cast<double>(pc.blocks));
  time_to_first_token.write(out, "lmx_time_to_first_token_seconds",
                            "From admission to a sequence's first token.");
  inter_token.write(out, "lmx_inter_token_latency_seconds", "Between two tokens of one sequence.");
  request_duration.write(out, "lmx_request_duration_seconds", "From admission to a request's last token.");
  return out;
}

}  // namespace lmx::server
