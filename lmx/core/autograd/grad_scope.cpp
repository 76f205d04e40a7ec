#include "lmx/core/autograd/grad_scope.h"

namespace lmx::autograd {
namespace {
thread_local int g_depth = 0;
}  // namespace

GradScope::GradScope() { ++g_depth; }
GradScope::~GradScope() { --g_depth; }
bool recording() { return g_depth > 0; }

}  // namespace lmx::autograd
