// Internal: closes the dot-product region opened by neon_dotprod_target.h.
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
