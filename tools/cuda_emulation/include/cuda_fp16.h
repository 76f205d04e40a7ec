#pragma once
#include "cuda_runtime.h"
struct __half { _Float16 v; };
inline float __half2float(__half h) { return static_cast<float>(h.v); }
inline __half __float2half_rn(float f) { return __half{static_cast<_Float16>(f)}; }
inline __half __ushort_as_half(unsigned short u) { return __half{std::bit_cast<_Float16>(u)}; }
inline unsigned short __half_as_ushort(__half h) { return std::bit_cast<unsigned short>(h.v); }
