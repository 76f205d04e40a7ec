#include "lmx/core/autograd/grad_scope.h"

namespace lmx::autograd {
namespace {
thread_local int g_depth = 0;
}  // namespace

GradScope::GradScope() { ++g_depth; }
GradScope::~GradScope() { --g_depth; }
PauseRecording::PauseRecording() : saved_(g_depth) { g_depth = 0; }
PauseRecording::~PauseRecording() { g_depth = saved_; }
bool recording() { return g_depth > 0; }

}  // namespace lmx::autograd
