#include "lmx/generate/generation_task.h"

namespace lmx::generate {

GenerationTask::GenerationTask(std::shared_ptr<ModelContainer> container,
                               std::vector<int32_t> prompt,
                               GenerateParameters params,
                               GenerateOptions options)
    : container_(std::move(container)) {
  worker_ = std::thread([this, prompt = std::move(prompt), params = std::move(params),
                         options = std::move(options)]() mutable {
    work(std::move(prompt), std::move(params), std::move(options));
  });
}

GenerationTask::~GenerationTask() {
  cancel();
  if (worker_.joinable()) worker_.join();
}

void GenerationTask::work(std::vector<int32_t> prompt,
                          GenerateParameters params,
                          GenerateOptions options) {
  try {
    container_->perform([&](models::LanguageModel& model, const tokenizer::Tokenizer& tok) {
      Generation gen(model, tok, std::move(prompt), params, std::move(options));
      {
        std::lock_guard<std::mutex> lock(mutex_);
        running_ = &gen;
        if (cancelled_) gen.cancel();
      }
      while (auto e = gen.next()) {
        std::lock_guard<std::mutex> lock(mutex_);
        events_.push_back(std::move(*e));
        ready_.notify_all();
      }
      std::lock_guard<std::mutex> lock(mutex_);
      running_ = nullptr;
    });
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    running_ = nullptr;
    error_ = std::current_exception();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  finished_ = true;
  ready_.notify_all();
}

std::optional<GenerationEvent> GenerationTask::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  ready_.wait(lock, [&] { return !events_.empty() || finished_; });
  if (!events_.empty()) {
    GenerationEvent e = std::move(events_.front());
    events_.pop_front();
    return e;
  }
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  return std::nullopt;
}

void GenerationTask::cancel() {
  std::lock_guard<std::mutex> lock(mutex_);
  cancelled_ = true;
  if (running_) running_->cancel();
}

void GenerationTask::join() {
  if (worker_.joinable()) worker_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

}  // namespace lmx::generate
