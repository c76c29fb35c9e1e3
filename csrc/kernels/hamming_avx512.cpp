// Hamming scan for AVX-512 without VPOPCNTDQ (Skylake-SP, Cascade Lake).
#include "kernels/popcnt_avx512bw.h"

#define EMBEDRT_POPCNT64(v) popcnt64_bw(v)
#define EMBEDRT_HAMMING_FN hamming_scan_avx512
#include "kernels/hamming_avx512.inc"
