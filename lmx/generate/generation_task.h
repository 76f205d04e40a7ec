// generate() on a background thread (the counterpart of mlx-swift-lm's generateTask):
// the worker holds the container's model (ModelContainer::perform) for as long as it
// generates; events are pulled from here. cancel(), or destroying the task, stops the
// worker at its next step and join() returns once the model is released. Errors inside
// generation are rethrown by next() / join().
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

#include "lmx/generate/generate.h"
#include "lmx/generate/model_container.h"

namespace lmx::generate {

class GenerationTask {
 public:
  GenerationTask(std::shared_ptr<ModelContainer> container,
                 std::vector<int32_t> prompt,
                 GenerateParameters params,
                 GenerateOptions options = {});
  ~GenerationTask();
  GenerationTask(const GenerationTask&) = delete;
  GenerationTask& operator=(const GenerationTask&) = delete;

  // Blocks for the next event; nullopt after the info event (or when the worker failed
  // after rethrowing its error once).
  std::optional<GenerationEvent> next();
  void cancel();
  // Waits for the worker to finish and release the model; rethrows its error, if any
  // and not yet reported by next().
  void join();

 private:
  void work(std::vector<int32_t> prompt, GenerateParameters params, GenerateOptions options);

  std::shared_ptr<ModelContainer> container_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<GenerationEvent> events_;
  bool finished_ = false;
  bool cancelled_ = false;
  Generation* running_ = nullptr;  // guarded by mutex_
  std::exception_ptr error_;
  std::thread worker_;
};

}  // namespace lmx::generate
