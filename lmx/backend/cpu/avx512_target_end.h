// Internal: closes the AVX-512 region opened by avx512_target.h.
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif
