// int8 scan for AVX512-VNNI (Cascade Lake and later): vpdpwssd.
#define EMBEDRT_SCAN_VNNI 1
#define EMBEDRT_SCAN_FN int8_dot_q16_avx512vnni
#include "kernels/int8_scan_avx512.inc"
