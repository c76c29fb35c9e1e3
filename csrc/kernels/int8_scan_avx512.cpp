// int8 scan for AVX-512 without VNNI (Skylake-SP): vpmaddwd + vpaddd.
#define EMBEDRT_SCAN_VNNI 0
#define EMBEDRT_SCAN_FN int8_dot_q16_avx512
#include "kernels/int8_scan_avx512.inc"
