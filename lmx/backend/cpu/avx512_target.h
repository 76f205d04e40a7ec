// Internal: opens the region of an AVX-512 translation unit whose functions are compiled
// for AVX-512 (include it after every other header; avx512_target_end.h closes it).
//
// Why a target region rather than -mavx512* on the whole file: inline functions and
// template instances from headers (std::, the thread pool, half.h, ...) are emitted by every
// translation unit that uses them and the linker keeps one copy. Compiled with AVX-512
// flags, that copy could be the one an AVX2-only machine ends up calling. Inside the region
// only this file's own functions (and lambdas) carry the AVX-512 target; the file itself is
// built with the AVX2 flags, like the AVX2 kernels, and its entry points run only after
// cpu_features().use_avx512().
#if defined(__clang__)
#pragma clang attribute push(                                                              \
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni"))), \
    apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")
// g++ 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused source of their
// unmasked forms and then warn that it "may be used uninitialized" (GCC PR 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
