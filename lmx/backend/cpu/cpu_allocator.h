// The CPU's caching allocator (64-byte aligned heap buffers; huge-page mmap from 2 MiB).
#pragma once

#include "lmx/core/allocator.h"

namespace lmx::cpu {

// The process-wide CPU allocator (created on first use, never destroyed).
Allocator& cpu_allocator();

}  // namespace lmx::cpu
