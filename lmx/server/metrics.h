// The server's counters for GET /metrics, in Prometheus' text format (0.0.4): requests
// by endpoint and status, prompt and generated tokens, the scheduler's queue depth,
// rows, batch sizes, prefill tokens and prefix cache, CPU tensor memory, and latency histograms (time to first token, inter-token
// latency, request duration). Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "lmx/generate/batch_scheduler.h"

namespace lmx::server {

// Cumulative buckets with fixed upper bounds (seconds), as Prometheus histograms.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // The _bucket / _sum / _count lines with their HELP and TYPE.
  void write(std::string& out, const std::string& name, const std::string& help) const;

 private:
  mutable std::mutex mutex_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bound, not cumulative; the last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  void count_request(const std::string& endpoint, int status);
  void add_tokens(int64_t prompt, int64_t generated);
  // A request whose client left before its end (its rows were cancelled).
  void count_cancelled();
  // The text of GET /metrics; `running_requests`: requests admitted (running or waiting).
  std::string render(const generate::SchedulerStats& scheduler, size_t admitted_requests) const;

  Histogram time_to_first_token;  // from admission to the first generated token
  Histogram inter_token;          // between two tokens of one sequence
  Histogram request_duration;     // from admission to the last token

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0, cancelled_ = 0;
};

}  // namespace lmx::server
