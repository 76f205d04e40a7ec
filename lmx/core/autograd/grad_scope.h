// Where the autograd tape records: only on a thread inside a GradScope. Outside one,
// the differentiable functions of lmx/core/autograd compute their values and keep
// nothing (no node, no saved tensor), and the inference path (lmx::ops on Tensors) never
// touches autograd at all.
#pragma once

namespace lmx::autograd {

// Recording is on for this thread while at least one GradScope lives (they nest).
class GradScope {
 public:
  GradScope();
  ~GradScope();
  GradScope(const GradScope&) = delete;
  GradScope& operator=(const GradScope&) = delete;
};

// Recording is off for this thread while it lives (inside a GradScope too); the previous
// state comes back when it ends (gradient checkpointing's first forward).
class PauseRecording {
 public:
  PauseRecording();
  ~PauseRecording();
  PauseRecording(const PauseRecording&) = delete;
  PauseRecording& operator=(const PauseRecording&) = delete;

 private:
  int saved_;
};

// Whether this thread is inside a GradScope.
bool recording();

}  // namespace lmx::autograd
