// Internal: opens the region of a NEON translation unit whose functions may use the int8
// dot products (sdot, FEAT_DotProd; include it after every other header, and close it with
// neon_dotprod_target_end.h). Advanced SIMD itself is baseline on aarch64 and needs no
// region. A region rather than -march=...+dotprod on the file for the reason
// avx512_target.h gives: only this file's own functions carry the extension, never the
// header inlines the linker may keep; they run only after cpu_features().use_neon_dotprod().
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("dotprod"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")
#endif
