// SDC tiles for AVX-512 without VPOPCNTDQ (Skylake-SP, Cascade Lake).
#include "kernels/popcnt_avx512bw.h"

#define EMBEDRT_POPCNT64(v) popcnt64_bw(v)
#define EMBEDRT_SDC_FN sdc_tile_avx512
#include "kernels/sdc_avx512.inc"
